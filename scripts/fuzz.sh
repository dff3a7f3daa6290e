#!/usr/bin/env bash
# Fuzz targets of fuzz/ (cargo-fuzz, libFuzzer, nightly toolchain). See fuzz/README.md.
#
#   scripts/fuzz.sh --ci             replay fuzz/regressions, then each target for $FUZZ_CI_SECONDS
#                                    (default 15 s: a minute in all); skipped, with a line saying
#                                    why, when the nightly toolchain or cargo-fuzz cannot be had
#   scripts/fuzz.sh --long           each target for $FUZZ_RUNS inputs (default 1,000,000), one
#                                    after the other; logs and a summary in fuzz/logs/
#   scripts/fuzz.sh run TARGET [S]   one target for S seconds (default: until stopped)
#   scripts/fuzz.sh replay           the committed regression inputs only
#
# Environment: FUZZ_TARGETS (default "headers ortc datagram signaling"), FUZZ_SANITIZER (default none;
# "address" for ASan), FUZZ_JOBS (libFuzzer -jobs, default 1), CARGO_TARGET_DIR as usual.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
TARGETS=${FUZZ_TARGETS:-headers ortc datagram signaling}
SANITIZER=${FUZZ_SANITIZER:-none}
CI_SECONDS=${FUZZ_CI_SECONDS:-15}
RUNS=${FUZZ_RUNS:-1000000}
FLAGS=(--sanitizer "$SANITIZER" --debug-assertions)

skip() {
    echo "SKIP fuzz: $1"
    exit 0
}

# The nightly toolchain and cargo-fuzz: installed if missing; in CI a failure to install skips.
tools() {
    local soft=$1
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "fuzz: installing the nightly toolchain"
        if ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
            [[ $soft == soft ]] && skip "no nightly toolchain (rustup toolchain install nightly failed)"
            echo "fuzz: cannot install the nightly toolchain" >&2
            exit 1
        fi
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked, about a minute)"
        if ! cargo install cargo-fuzz --locked >/dev/null 2>&1; then
            [[ $soft == soft ]] && skip "cargo-fuzz cannot be installed (cargo install cargo-fuzz --locked failed)"
            echo "fuzz: cannot install cargo-fuzz" >&2
            exit 1
        fi
    fi
}

build() {
    echo "fuzz: building the targets (nightly, sanitizer $SANITIZER, debug assertions)"
    cargo +nightly fuzz build "${FLAGS[@]}" 2>&1 | tail -1
}

# Every committed regression input, once, through its target: they must pass.
replay() {
    local t n
    for t in $TARGETS; do
        n=$(find "regressions/$t" -type f 2>/dev/null | wc -l)
        [[ $n == 0 ]] && continue
        echo "fuzz: replaying $n regression input(s) of $t"
        cargo +nightly fuzz run "${FLAGS[@]}" "$t" $(find "regressions/$t" -type f | sort) -- -runs=1 >"logs/replay-$t.log" 2>&1 || {
            tail -40 "logs/replay-$t.log"
            echo "FAIL fuzz: a regression input of $t fails again"
            exit 1
        }
    done
}

# One target: libFuzzer's new inputs go to corpus/ (not committed), seeds/ and regressions/
# are read too. Prints libFuzzer's last status line and the final stats.
run() {
    local t=$1 log=logs/$1.log
    shift
    mkdir -p "corpus/$t" "artifacts/$t"
    local dirs=("corpus/$t" "seeds/$t")
    [[ -d regressions/$t ]] && dirs+=("regressions/$t")
    local start=$SECONDS status=0
    # -jobs only when asked: with it libFuzzer runs the target in a child logging to fuzz-<n>.log.
    local jobs=()
    [[ ${FUZZ_JOBS:-1} -gt 1 ]] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "${dirs[@]}" -- -print_final_stats=1 ${jobs[@]+"${jobs[@]}"} "$@" >"$log" 2>&1 || status=$?
    local last
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
    echo "fuzz: $t: ${last:-no status line} ($((SECONDS - start)) s)"
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed "s/^/fuzz: $t: /" || true
    if [[ $status != 0 ]]; then
        grep -E -A12 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -40
        grep -E 'Test unit written' "$log" || true
        echo "FAIL fuzz: $t (log: fuzz/$log)"
        return 1
    fi
}

mkdir -p logs
case "${1:-}" in
--ci)
    tools soft
    build
    replay
    failed=0
    for t in $TARGETS; do
        run "$t" -max_total_time="$CI_SECONDS" || failed=1
    done
    [[ $failed == 0 ]] && echo "PASS fuzz: no panic in $(echo $TARGETS | wc -w) targets, $CI_SECONDS s each"
    exit $failed
    ;;
--long)
    tools hard
    build
    replay
    summary=logs/summary-$(date +%Y%m%d-%H%M%S).txt
    failed=0
    for t in $TARGETS; do
        echo "fuzz: $t: $(date -u +%H:%M:%S) start, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary"
        run "$t" -runs="$RUNS" | tee -a "$summary" || failed=1
    done
    echo "fuzz: summary in fuzz/$summary"
    exit $failed
    ;;
run)
    tools hard
    build
    t=${2:?a target: $TARGETS}
    if [[ -n ${3:-} ]]; then run "$t" -max_total_time="$3"; else run "$t"; fi
    ;;
replay)
    tools hard
    build
    replay
    ;;
*)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
