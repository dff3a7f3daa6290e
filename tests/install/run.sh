#!/usr/bin/env bash
# A real test of install_full.sh: a Debian 12 root made by debootstrap, the installer run in it
# with chroot (--binary), the installed server started by the unit's own ExecStart line and
# checked over HTTPS, then the installer run a second time: nothing may change, still healthy.
# With --with-monitoring: Prometheus and the node exporter installed, configured on loopback,
# checked with the root's own promtool, the server's metrics on their private listener.
#
#   sudo tests/install/run.sh [path/to/atome]     (default: $CARGO_TARGET_DIR/debug/atome)
#
# The pristine root and apt's downloads are cached in ~/.cache/atome-debootstrap.
# The test root goes under $ATOME_INSTALL_TEST_TMP (default /tmp; a tmpfs will do where the disk is short).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}
binary=${1:-$target/debug/atome}
cache=$HOME/.cache/atome-debootstrap
base=$cache/bookworm-minbase
archives=$cache/apt-archives
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
port=18443
turn_port=13478
metrics_port=19464
prom_port=19090

pass() { printf 'PASS: %s\n' "$*"; }
# check DESCRIPTION COMMAND...: PASS if the command succeeds, else FAIL and stop.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
has() { grep -q "$1" "$2"; }
quietly() { "$@" >/dev/null 2>&1; }
fail() {
  printf 'FAIL: %s\n' "$*"
  exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot)"
[ -x "$binary" ] || fail "no server binary at $binary (cargo build -p atome first)"
command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

mkdir -p "$cache" "$archives"
if [ ! -x "$base/bin/bash" ]; then
  echo "debootstrap: building $base (once)"
  rm -rf "$base.tmp"
  debootstrap --variant=minbase bookworm "$base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    fail "debootstrap (see $cache/debootstrap.log)"
  mv "$base.tmp" "$base"
fi

root=$(mktemp -d "${ATOME_INSTALL_TEST_TMP:-/tmp}/atome-install-root.XXXXXX")
server_pid=""
# What the installer changes on the machine itself through the root's /proc and nftables (the
# kernel is shared): put back as found.
rmem_before=$(cat /proc/sys/net/core/rmem_max)
wmem_before=$(cat /proc/sys/net/core/wmem_max)
nft_before=$(nft list table inet atome >/dev/null 2>&1 && echo yes || echo no)
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  echo "$rmem_before" >/proc/sys/net/core/rmem_max
  echo "$wmem_before" >/proc/sys/net/core/wmem_max
  if [ "$nft_before" = no ]; then nft delete table inet atome 2>/dev/null || true; fi
  for m in var/cache/apt/archives dev/pts dev proc sys; do
    umount -l "$root/$m" 2>/dev/null || true
  done
  rm -rf "$root"
}
trap cleanup EXIT
cp -a "$base/." "$root/"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mkdir -p "$root/var/cache/apt/archives"
mount --bind "$archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# As in any chroot: packages must not start their daemons (coturn's) here; the installer checks
# coturn by starting it once itself.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/src"
cp "$repo/install_full.sh" "$root/src/"
mkdir -p "$root/src/deploy/prometheus"
cp "$repo/deploy/prometheus/alerts.yml" "$root/src/deploy/prometheus/"
cp "$binary" "$root/src/atome"

install_once() {
  chroot "$root" /bin/bash /src/install_full.sh --binary /src/atome --port "$port" --rtc-port 0 \
    --workers 2 --announced-ip 127.0.0.1 --turn-port "$turn_port" --turn-relay-ports 47100-47199 \
    --with-monitoring --metrics-port "$metrics_port" --prometheus-port "$prom_port" >"$1" 2>&1 || {
    tail -n 30 "$1"
    fail "install_full.sh exited non-zero"
  }
}

# Runs the unit's ExecStart as the unit would (its user, its environment file), in the root.
start_server() {
  local exec_start
  exec_start=$(sed -n 's/^ExecStart=//p' "$root/etc/systemd/system/atome.service")
  [ -n "$exec_start" ] || fail "the unit has no ExecStart"
  chroot "$root" /bin/bash -c "set -a; . /etc/atome/atome.env; set +a; cd /opt/atome; exec runuser -u atome -- $exec_start" \
    >>"$root/var/log/atome/test-server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do
    curl -fsSk --max-time 2 "https://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -n 20 "$root/var/log/atome/test-server.log"
  fail "the server did not answer on https://127.0.0.1:$port/health"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

snapshot() {
  (
    cd "$root"
    find etc/atome etc/systemd/system/atome.service etc/turnserver.conf opt/atome etc/prometheus/prometheus.yml \
      etc/prometheus/atome-alerts.yml etc/default/prometheus etc/default/prometheus-node-exporter etc/sysctl.d/60-atome-udp.conf -type f -print0 |
      sort -z | xargs -0 sha256sum
    stat -c '%n %a %U %G' var/lib/atome var/log/atome etc/atome/tls/key.pem etc/atome/atome.env etc/atome/secret \
      etc/atome/turn-secret etc/turnserver.conf
    chroot "$root" sqlite3 /var/lib/atome/atome.db 'SELECT user_id, phone_e164 FROM users ORDER BY 1;'
  )
}

t0=$(date +%s)
# Debian's default limits, so that the installer has something to raise.
echo 212992 >/proc/sys/net/core/rmem_max
echo 212992 >/proc/sys/net/core/wmem_max
install_once "$root/../install-1.log"
check "first install completed with a status block" has "Atome is installed" "$root/../install-1.log"
check "says systemd is not running" has "systemd is not running" "$root/../install-1.log"
check "install.log written" test -s "$root/var/log/atome/install.log"
check "data dir is 0700" test "$(stat -c %a "$root/var/lib/atome")" = 700

check "unit hardened (NoNewPrivileges)" has '^NoNewPrivileges=yes' "$root/etc/systemd/system/atome.service"
check "unit hardened (ProtectSystem=strict)" has '^ProtectSystem=strict' "$root/etc/systemd/system/atome.service"
check "unit raises the descriptor limit" has '^LimitNOFILE=65536' "$root/etc/systemd/system/atome.service"
check "firewall rules written" has 'udp dport' "$root/etc/atome/atome.nft"
check "UDP buffers raised for the workers' 4 MiB sockets" test "$(cat /proc/sys/net/core/rmem_max)" -ge 4194304 -a "$(cat /proc/sys/net/core/wmem_max)" -ge 4194304
check "and kept at boot" test "$(grep -c '^net.core.[rw]mem_max = [0-9]*$' "$root/etc/sysctl.d/60-atome-udp.conf")" = 2
env_file=$root/etc/atome/atome.env
check "no SMS gateway given: one-time codes off (ATOME_SMS_SENDER=none)" has '^ATOME_SMS_SENDER=none$' "$env_file"
check "codes never go to the log (no ATOME_SMS_SENDER=log)" test -z "$(grep '^ATOME_SMS_SENDER=log' "$env_file")"
check "status block says codes are off" has '^Codes: *OFF' "$root/../install-1.log"
check "the secret is under /etc/atome" has '^ATOME_SECRET_FILE=/etc/atome/secret$' "$env_file"
check "secret: 32 bytes, atome-owned, 0600" test "$(chroot "$root" stat -c '%s %U %a' /etc/atome/secret)" = "32 atome 600"
check "ffmpeg installed in the root" quietly chroot "$root" ffmpeg -version

# TURN: Debian's coturn with the server's secret, its ports in the firewall, checked at the end.
turn_conf=$root/etc/turnserver.conf
check "coturn installed in the root" test -x "$root/usr/bin/turnserver"
check "turn secret: 64 hex digits, root:atome 0640" test "$(chroot "$root" stat -c '%s %U %G %a' /etc/atome/turn-secret)" = "65 root atome 640"
check "coturn uses the TURN REST API" has '^use-auth-secret$' "$turn_conf"
check "coturn has the server's secret" test "$(sed -n 's/^static-auth-secret=//p' "$turn_conf")" = "$(cat "$root/etc/atome/turn-secret")"
check "coturn's config is not world-readable (root:turnserver 0640)" test "$(chroot "$root" stat -c '%U %G %a' /etc/turnserver.conf)" = "root turnserver 640"
check "coturn listens on the chosen port" has "^listening-port=$turn_port$" "$turn_conf"
check "coturn relays from the chosen range" test "$(grep -c '^m[ai][nx]-port=471[09]' "$turn_conf")" = 2
check "coturn never relays to loopback (no allow-loopback-peers)" test -z "$(grep 'allow-loopback-peers' "$turn_conf")"
check "no TURN over TLS with a self-signed certificate" has '^no-tls$' "$turn_conf"
check "the server gets the TURN URLs" has "^ATOME_TURN_URLS='turn:127.0.0.1:$turn_port?transport=udp,turn:127.0.0.1:$turn_port?transport=tcp'$" "$env_file"
check "the server gets the TURN secret file" has '^ATOME_TURN_SECRET_FILE=/etc/atome/turn-secret$' "$env_file"
check "firewall: TURN port over UDP" has "udp dport $turn_port accept" "$root/etc/atome/atome.nft"
check "firewall: TURN port over TCP" has "tcp dport $turn_port accept" "$root/etc/atome/atome.nft"
check "firewall: the relay range" has "udp dport 47100-47199 accept" "$root/etc/atome/atome.nft"
check "firewall: no 5349 without TLS" test -z "$(grep 'dport 5349' "$root/etc/atome/atome.nft")"
check "status block: coturn checked" has "^TURN: *coturn ok: $turn_port udp/tcp" "$root/../install-1.log"
check "the TURN secret is not in the install log" test -z "$(grep -F "$(cat "$root/etc/atome/turn-secret")" "$root/var/log/atome/install.log" "$root/../install-1.log")"

# Monitoring: the packages, the server's private metrics listener, Prometheus' configuration
# (valid for the root's own promtool), both daemons on loopback, checked by the installer.
check "prometheus and the node exporter installed in the root" test -x "$root/usr/bin/prometheus" -a -x "$root/usr/bin/prometheus-node-exporter"
check "the server's metrics on a private listener" has "^ATOME_METRICS_LISTEN=127.0.0.1:$metrics_port$" "$env_file"
check "the alert rules installed as they are in the repository" cmp -s "$repo/deploy/prometheus/alerts.yml" "$root/etc/prometheus/atome-alerts.yml"
check "prometheus.yml scrapes the metrics listener" has "targets: \[\"127.0.0.1:$metrics_port\"\]" "$root/etc/prometheus/prometheus.yml"
check "prometheus.yml loads the alert rules" has '^  - /etc/prometheus/atome-alerts.yml$' "$root/etc/prometheus/prometheus.yml"
check "promtool (the root's) finds the configuration and its rules valid" quietly chroot "$root" promtool check config /etc/prometheus/prometheus.yml
check "Prometheus bound to loopback" has "^ARGS=\"--web.listen-address=127.0.0.1:$prom_port\"$" "$root/etc/default/prometheus"
check "the node exporter bound to loopback" has '^ARGS="--web.listen-address=127.0.0.1:9100"$' "$root/etc/default/prometheus-node-exporter"
check "status block: metrics private" has "^Metrics: *http://127.0.0.1:$metrics_port/metrics (private" "$root/../install-1.log"
check "status block: Prometheus checked with the 8 alert rules" has "^Monitoring: *Prometheus on 127.0.0.1:$prom_port (8 alert rules" "$root/../install-1.log"

start_server
health=$(curl -fsSk "https://127.0.0.1:$port/health")
check "metrics served on the private listener" grep -q '^atome_worker_up' <<<"$(curl -fsS "http://127.0.0.1:$metrics_port/metrics")"
check "no metrics on the public listener (404)" test "$(curl -sSk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/metrics")" = 404
check "health over HTTPS: $health" grep -q '"status":"ok"' <<<"$health"
otp=$(curl -sSk -H 'content-type: application/json' -d '{"phone_e164":"+33612345678"}' "https://127.0.0.1:$port/auth/otp/request")
check "API call (otp request, codes off): $otp" grep -q '"code":"otp_unavailable"' <<<"$otp"
check "HSTS over TLS" grep -qi '^strict-transport-security: max-age=31536000' <<<"$(curl -sSk -D - -o /dev/null "https://127.0.0.1:$port/health")"
stop_server
server_log=$root/var/log/atome/test-server.log
check "the server said at start that codes are off" has 'one-time codes are off' "$server_log"
check "the server hands out TURN credentials" has "TURN: clients get credentials for turn:127.0.0.1:$turn_port" "$server_log"
check "no one-time code in the server's logs" test -z "$(grep -rh 'one-time code (log SMS sender)' "$root/var/log/atome")"
check "database files 0600" test "$(stat -c '%a' "$root/var/lib/atome/atome.db")" = 600
before=$(snapshot)

install_once "$root/../install-2.log"
check "second run keeps the config" has "config: keeping" "$root/../install-2.log"
after=$(snapshot)
if [ "$before" = "$after" ]; then
  pass "second run changed nothing (config, secrets, binary, unit, data)"
else
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") || true
  fail "second run changed something"
fi
start_server
check "still healthy after the second run" grep -q '"status":"ok"' <<<"$(curl -fsSk "https://127.0.0.1:$port/health")"
stop_server

# A configuration written by an older installer: the sender 'log', no secret line. A new run
# turns codes off and points the server at the secret; everything else in the file is kept.
sed -i -e 's/^ATOME_SMS_SENDER=none$/ATOME_SMS_SENDER=log/' -e '/^ATOME_SECRET_FILE=/d' -e '/^ATOME_TURN_/d' -e '/^# TURN:/d' \
  -e '/^ATOME_METRICS_LISTEN=/d' "$env_file"
# An administrator's own prometheus.yml (the installer's first line removed) is left alone.
sed -i -e '1d' -e 's/^  scrape_interval: 15s$/  scrape_interval: 30s/' "$root/etc/prometheus/prometheus.yml"
edited=$(sha256sum <"$root/etc/prometheus/prometheus.yml")
install_once "$root/../install-3.log"
check "an old configuration gets ATOME_METRICS_LISTEN once" test "$(grep -c "^ATOME_METRICS_LISTEN=127.0.0.1:$metrics_port$" "$env_file")" = 1
check "an edited prometheus.yml is left as it is" test "$(sha256sum <"$root/etc/prometheus/prometheus.yml")" = "$edited"
check "and the installer says so" has "prometheus.yml was edited" "$root/../install-3.log"
check "an old ATOME_SMS_SENDER=log becomes none" has '^ATOME_SMS_SENDER=none$' "$env_file"
check "an old configuration gets ATOME_SECRET_FILE" has '^ATOME_SECRET_FILE=/etc/atome/secret$' "$env_file"
check "the rest of the configuration is kept" has '^ATOME_RTC_ANNOUNCED_IP=127.0.0.1$' "$env_file"
check "an old configuration gets TURN once" test "$(grep -c '^ATOME_TURN_URLS=' "$env_file")" = 1
if command -v shellcheck >/dev/null; then
  check "shellcheck clean" shellcheck "$repo/install_full.sh" "$here/run.sh"
fi
echo "install test: $(($(date +%s) - t0)) s"
