#!/usr/bin/env bash
# The real test of install_full.sh. A Debian 12 root is made with debootstrap (from the mirror
# apt already uses), install_full.sh --binary runs in it with chroot (also building the web
# client with Debian's Node.js and npm ci), the installed server is started by the unit's own
# lines (User, WorkingDirectory, EnvironmentFile, AmbientCapabilities, ExecStart, StandardOutput)
# and checked over HTTPS (/health, a login, a room, the web page, its UDP ports); then the
# installer runs a second time and nothing may change (config, certificate, binary, unit,
# firewall rules, data) and the server must still be healthy with the same data.
#
#   sudo tests/install/run.sh [path/to/atome]
#
# Binary: the argument, else $CARGO_TARGET_DIR/release/atome, else .../debug/atome.
# Needs root (debootstrap, chroot, mounts) and apt access to a Debian mirror (and the npm
# registry for the web client). Environment:
#   ATOME_DEBOOTSTRAP_CACHE  cache of the pristine root and downloads (~/.cache/atome-debootstrap)
#   DEBIAN_MIRROR            default: the first Debian URI in /etc/apt/sources.list*
#   ATOME_TEST_PORT          HTTPS port (default 443, the real one: checks the bind capability)
#   ATOME_TEST_WEB=0         do not build the web client in the root (faster)
# Prints PASS/FAIL lines; exits non-zero on the first failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}
binary=${1:-}
if [ -z "$binary" ]; then
  binary=$target/release/atome
  [ -x "$binary" ] || binary=$target/debug/atome
fi
cache=${ATOME_DEBOOTSTRAP_CACHE:-$HOME/.cache/atome-debootstrap}
suite=bookworm
base=$cache/$suite-minbase-systemd
port=${ATOME_TEST_PORT:-443}
rtc_port=47110 # two workers: 47110 and 47111
build_web=${ATOME_TEST_WEB:-1}
t_start=$(date +%s)

passed=0
pass() {
  printf 'PASS: %s\n' "$*"
  passed=$((passed + 1))
}
fail() {
  printf 'FAIL: %s\n' "$*"
  printf 'install: %d passed, 1 failed\n' "$passed"
  exit 1
}
# check DESCRIPTION COMMAND...: PASS when the command succeeds, else FAIL (and stop).
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
has() { grep -q -- "$1" "$2"; }
lacks() { ! grep -q -- "$1" "$2"; }
mode_owner() {
  local got
  got=$(in_root stat -c "%a %U:%G" "$1") # names as the root sees them
  [ "$got" = "$2" ] || { echo "  $1 is $got, expected $2"; return 1; }
}
elapsed() { echo "$(($(date +%s) - t_start)) s"; }

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, mounts): sudo $0"
[ -x "$binary" ] || fail "no server binary at $binary (cargo build -p atome first, or give its path)"
for tool in debootstrap curl; do
  command -v "$tool" >/dev/null || fail "$tool missing (apt-get install debootstrap curl)"
done

# The Debian mirror apt already uses (deb822 .sources or one-line .list), unless given.
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
    /^URIs:/ { u = $2 } /^Suites:/ { if ($0 ~ /bookworm|trixie|bullseye|sid/ && $0 !~ /security/ && u != "") { print u; exit } }')
  [ -n "$uri" ] || uri=$(grep -hE '^deb +(\[[^]]*\] +)?https?://' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -v security | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk 'NR == 1 {print $1}')
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}
mirror=${DEBIAN_MIRROR:-$(debian_mirror)}

# ---- the pristine root (cached) ------------------------------------------------------------
mkdir -p "$cache/debs" "$cache/apt-archives" "$cache/npm"
if [ ! -f "$base/.complete" ]; then
  echo "debootstrap: building a Debian 12 root in $base (once; mirror from apt's sources)"
  rm -rf "$base"
  # minbase + systemd: a bare server with systemd installed (not running inside a chroot).
  debootstrap --variant=minbase --include=systemd-sysv --cache-dir="$cache/debs" \
    "$suite" "$base" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    fail "debootstrap (see $cache/debootstrap.log)"
  touch "$base/.complete"
  echo "debootstrap: done ($(elapsed))"
fi

# ---- a throwaway copy of it ----------------------------------------------------------------
work=$(mktemp -d /tmp/atome-install-test.XXXXXX)
root=$work/root
mkdir -p "$root" "$work/upper" "$work/ovl"
server_pid=""
mounted=()
cleanup() {
  local rc=$?
  [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; } || true
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
  if [ "$rc" != 0 ] && [ "${ATOME_TEST_KEEP:-0}" = 1 ]; then
    echo "kept for inspection: $work (logs: $work/*.log)"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
mnt() { # mnt ARGS... TARGET
  mount "$@" || return 1
  mounted+=("${*: -1}")
}
if mnt -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/ovl" "$root" 2>/dev/null; then
  :
else
  cp -a "$base/." "$root/"
fi
mnt -t proc proc "$root/proc"
mnt --bind /dev "$root/dev"
mnt --bind /dev/pts "$root/dev/pts"
mnt -t tmpfs tmpfs "$root/run"
mnt --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
mkdir -p "$root/var/cache/atome/npm"
mnt --bind "$cache/npm" "$root/var/cache/atome/npm"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/src"
cp "$repo/install_full.sh" "$root/src/"
cp "$binary" "$root/src/atome"
if [ "$build_web" = 1 ] && [ -f "$repo/web/package.json" ]; then
  (cd "$repo/web" && tar --exclude=./node_modules --exclude=./dist -cf - .) | (mkdir -p "$root/src/web" && cd "$root/src/web" && tar -xf -)
fi
# The root trusts what this machine trusts (local CAs, e.g. a TLS-inspecting proxy: the
# installer's ca-certificates package adds them) and uses its proxy settings, if any.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
pass_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -z "${!v:-}" ] || pass_env+=("$v=${!v}")
done
in_root() { chroot "$root" /usr/bin/env -i "${pass_env[@]}" "$@"; }

# The real HTTPS port (443) unless it is taken here.
if [ -z "${ATOME_TEST_PORT:-}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "NOTE: port $port is in use on this machine: using 18443 (the bind capability is not exercised)"
  port=18443
fi
install_args=(--binary /src/atome --port "$port" --rtc-port "$rtc_port" --workers 2 --announced-ip 127.0.0.1)

install_once() { # install_once LOG
  if ! in_root /bin/bash /src/install_full.sh "${install_args[@]}" >"$1" 2>&1; then
    tail -n 40 "$1"
    fail "install_full.sh exited non-zero (log above)"
  fi
}

# ---- 0: an unsupported system is refused, untouched --------------------------------------
printf 'ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n' >"$work/os-release"
mnt --bind "$work/os-release" "$root/usr/lib/os-release"
if in_root /bin/bash /src/install_full.sh "${install_args[@]}" >"$work/refused.log" 2>&1; then
  fail "install_full.sh accepted Fedora"
fi
umount "$root/usr/lib/os-release"
unset 'mounted[-1]'
check "unsupported system refused with a clear message" has "unsupported system: Fedora Linux 40" "$work/refused.log"
check "nothing touched on the refused system" test ! -e "$root/opt/atome" -a ! -e "$root/etc/atome" -a ! -e "$root/var/log/atome"

# ---- 1: first installation -----------------------------------------------------------------
echo "first install ($(elapsed) so far)"
t1=$(date +%s)
install_once "$work/install-1.log"
echo "first install took $(($(date +%s) - t1)) s"
log1=$work/install-1.log
check "first run ends with the status block" has "Atome is installed" "$log1"
check "says systemd is not running and the unit is not started" has "systemd is not running here" "$log1"
check "health checked by the installer" has "health: ok" "$log1"
check "install.log holds the run" has "Atome is installed" "$root/var/log/atome/install.log"
check "service user atome (system, no login)" grep -q '^atome:x:[0-9]*:[0-9]*:.*:/var/lib/atome:/usr/sbin/nologin$' "$root/etc/passwd"
check "/var/lib/atome is 0700 atome" mode_owner /var/lib/atome "700 atome:atome"
check "/var/log/atome belongs to atome" mode_owner /var/log/atome "750 atome:atome"
check "atome.env is 0640 root:atome" mode_owner /etc/atome/atome.env "640 root:atome"
check "TLS key is 0640 root:atome" mode_owner /etc/atome/tls/key.pem "640 root:atome"
check "self-signed certificate valid for 127.0.0.1" bash -c "openssl x509 -noout -ext subjectAltName -in '$root/etc/atome/tls/cert.pem' | grep -q 'IP Address:127.0.0.1'"
check "binary installed" cmp -s "$binary" "$root/opt/atome/bin/atome"
unit=$root/etc/systemd/system/atome.service
for line in Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict "ReadWritePaths=/var/lib/atome /var/log/atome" \
  User=atome EnvironmentFile=/etc/atome/atome.env AmbientCapabilities=CAP_NET_BIND_SERVICE; do
  check "unit: $line" has "^$line\$" "$unit"
done
check "unit enabled (multi-user.target.wants)" test -L "$root/etc/systemd/system/multi-user.target.wants/atome.service"
if in_root systemd-analyze --version >/dev/null 2>&1; then
  in_root systemd-analyze verify /etc/systemd/system/atome.service >"$work/verify.log" 2>&1 || true
  check "systemd-analyze verify: no complaint about the unit" lacks "atome.service" "$work/verify.log"
fi
nft=$root/etc/atome/atome.nft
check "firewall: rules file opens tcp $port" grep -qE "tcp dport \{ [0-9,]*$port" "$nft"
check "firewall: rules file opens udp $rtc_port-$((rtc_port + 1)) (one per worker)" has "udp dport $rtc_port-$((rtc_port + 1)) accept" "$nft"
check "firewall: ssh kept open" grep -qE "tcp dport \{ 22," "$nft"
check "firewall: other input dropped" has "policy drop;" "$nft"
check "firewall: loaded at boot (/etc/nftables.conf includes it)" has 'include "/etc/atome/atome.nft"' "$root/etc/nftables.conf"
check "firewall: says it is not applied in a chroot" has "cannot be applied live" "$log1"
if in_root nft list tables >/dev/null 2>&1; then
  check "firewall: the host's live rules were not touched" bash -c "! chroot '$root' nft list table inet atome >/dev/null 2>&1"
  check "firewall: rules file is valid nftables (nft -c)" in_root nft -c -f /etc/atome/atome.nft
fi
check "ffmpeg installed in the root" in_root ffmpeg -version
check "logrotate configured" test -f "$root/etc/logrotate.d/atome"
if [ "$build_web" = 1 ] && [ -f "$repo/web/package.json" ]; then
  check "web client built (npm ci, Debian's Node.js) and installed" test -f "$root/opt/atome/web/index.html"
  check "web client: the source copy was not modified" test ! -e "$root/src/web/node_modules"
fi

# ---- the server, started the way the unit starts it ----------------------------------------
unit_get() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
start_server() {
  local user wd envfile exec_start caps out
  user=$(unit_get User)
  wd=$(unit_get WorkingDirectory)
  envfile=$(unit_get EnvironmentFile)
  exec_start=$(unit_get ExecStart)
  out=$(unit_get StandardOutput)
  out=${out#append:}
  caps=$(unit_get AmbientCapabilities | tr 'A-Z ' 'a-z,' | sed 's/cap_/+/g')
  if [ -z "$exec_start" ] || [ -z "$user" ] || [ -z "$out" ]; then fail "the unit lacks ExecStart, User or StandardOutput"; fi
  # chroot itself is the background job (then bash and setpriv exec): $! is the server.
  # shellcheck disable=SC2016 # expanded by the shell inside the root
  chroot "$root" /usr/bin/env -i "${pass_env[@]}" /bin/bash -c 'set -a; . "$1"; set +a; cd "$2" || exit 1
    exec setpriv --reuid="$3" --regid="$3" --init-groups --inh-caps="$4" --ambient-caps="$4" --no-new-privs -- '"$exec_start" \
    _ "$envfile" "$wd" "$user" "$caps" >>"$root$out" 2>&1 &
  server_pid=$!
  local i
  for i in $(seq 1 100); do
    curl -fsSk --max-time 2 "https://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 20 "$root$out"
  fail "the server started by the unit's ExecStart did not answer on https://127.0.0.1:$port/health"
}
stop_server() {
  kill -TERM "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  check "server stopped cleanly on SIGTERM (exit $rc)" test "$rc" = 0
}
api() { # api METHOD PATH [JSON]
  local args=(-sSk --max-time 5 -X "$1" -H 'content-type: application/json')
  [ -z "${TOKEN:-}" ] || args+=(-H "authorization: Bearer $TOKEN")
  [ -z "${3:-}" ] || args+=(-d "$3")
  curl "${args[@]}" "https://127.0.0.1:$port$2"
}
udp_bound() { # the port is bound (any address) in this network namespace
  local hex
  hex=$(printf ':%04X ' "$1")
  grep -q "$hex" /proc/net/udp /proc/net/udp6 2>/dev/null
}

start_server
health=$(api GET /health)
check "GET /health over HTTPS: status ok" grep -q '"status":"ok"' <<<"$health"
check "GET /health: 2 workers, version of the binary" grep -q "\"workers\":2.*\"version\":\"$("$binary" --version | awk '{print $2}')\"\|\"version\":\"$("$binary" --version | awk '{print $2}')\".*\"workers\":2" <<<"$health"
check "WebRTC UDP ports $rtc_port and $((rtc_port + 1)) bound" bash -c "$(declare -f udp_bound); udp_bound $rtc_port && udp_bound $((rtc_port + 1))"
phone="+33612345678"
otp=$(api POST /auth/otp/request "{\"phone_e164\":\"$phone\"}")
check "API: POST /auth/otp/request: $otp" grep -q '"success":true' <<<"$otp"
sleep 0.3
code=$(sed -n 's/.*one-time code.*code=\([0-9]\{6\}\).*/\1/p' "$root/var/log/atome/atome.log" | tail -n 1)
check "one-time code in the service log (ATOME_SMS_SENDER=log, no ANSI colours)" test -n "$code"
verify=$(api POST /auth/otp/verify "{\"phone_e164\":\"$phone\",\"code\":\"$code\",\"display_name\":\"Installer test\"}")
TOKEN=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$verify")
check "API: POST /auth/otp/verify gives a token" test -n "$TOKEN"
room=$(api POST /rooms '{"name":"install test"}')
room_id=$(sed -n 's/.*"room_id":"\{0,1\}\([^",}]*\).*/\1/p' <<<"$room")
check "API: POST /rooms: $room" test -n "$room_id"
check "API: GET /rooms/$room_id" grep -q '"name":"install test"' <<<"$(api GET "/rooms/$room_id")"
if [ -f "$root/opt/atome/web/index.html" ]; then
  check "GET / serves the installed web client" grep -qi '<html' <<<"$(curl -fsSk "https://127.0.0.1:$port/")"
fi
stop_server

# What must not change: installed files (content, mode, owner), the user, the data.
snapshot() {
  # shellcheck disable=SC2016 # runs in the root
  in_root /bin/bash -c '
    cd / && find etc/atome etc/systemd/system opt/atome etc/logrotate.d/atome etc/nftables.conf \
      \( -type f -o -type l \) -print0 | sort -z | xargs -0 stat -c "%n %a %U:%G %s %Y"
    find etc/atome etc/systemd/system/atome.service opt/atome -type f -print0 | sort -z | xargs -0 sha256sum
    stat -c "%n %a %U:%G" var/lib/atome var/log/atome etc/atome/tls
    grep "^atome:" etc/passwd etc/group'
  in_root sqlite3 -readonly /var/lib/atome/atome.db \
    'SELECT user_id, phone_e164, display_name FROM users ORDER BY 1;
     SELECT room_id, name FROM rooms ORDER BY 1; SELECT count(*) FROM tokens;'
}
before=$(snapshot)
check "snapshot holds the user and the room" grep -q "install test" <<<"$before"

# ---- 2: second run -------------------------------------------------------------------------
t2=$(date +%s)
install_once "$work/install-2.log"
echo "second install took $(($(date +%s) - t2)) s"
log2=$work/install-2.log
check "second run: 'Changes: none'" grep -q '^Changes: *none' "$log2"
check "second run: no 'changed:' line" lacks "changed:" "$log2"
check "second run keeps the config" has "config: keeping" "$log2"
check "second run installs no package (no apt)" lacks "apt: " "$log2"
check "second run still healthy (installer's own check)" has "health: ok" "$log2"
after=$(snapshot)
if [ "$before" = "$after" ]; then
  pass "second run changed nothing (config, secrets/TLS, binary, unit, firewall, web, user, data)"
else
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") || true
  fail "second run changed something (diff above)"
fi
check "install.log holds both runs" test "$(grep -c 'install_full.sh started' "$root/var/log/atome/install.log")" = 2
start_server
check "still healthy after the second run" grep -q '"status":"ok"' <<<"$(api GET /health)"
check "data kept: the token from before the second run still works" grep -q "\"phone_e164\":\"+33612345678\"" <<<"$(api GET /auth/me)"
stop_server

if command -v shellcheck >/dev/null; then
  check "shellcheck clean (install_full.sh, tests/install/run.sh)" shellcheck "$repo/install_full.sh" "$here/run.sh"
else
  echo "NOTE: shellcheck not installed (apt-get install shellcheck): not run"
fi
printf 'install: %d passed, 0 failed (%s)\n' "$passed" "$(elapsed)"
