#!/usr/bin/env bash
# install_full.sh: installs and configures the Atome core server on a bare machine, unattended.
#
#   sudo ./install_full.sh [--binary PATH] [--no-recording] [--port 443] [--rtc-port 40000]
#                          [--workers N] [--announced-ip IP] [--tls-cert PEM --tls-key PEM]
#                          [--domain NAME] [--sms-webhook-url URL] [--no-start]
#                          [--turn-port 3478] [--turn-relay-ports 49152-49999] [--no-turn]
#                          [--with-monitoring [--metrics-port 9464] [--prometheus-port 9090]]
#
# TURN: Debian's coturn relays media for clients behind firewalls and symmetric NATs, with a
# secret shared with the server (TURN REST API credentials; --no-turn: none). Ports: 3478 UDP/TCP,
# 5349 (TLS) when a trusted certificate is installed, and the relay range (UDP).
#
# Sign-in by one-time code needs an SMS gateway: give its URL with --sms-webhook-url (the server
# POSTs {to, text} to it). Without one, codes are off (the server answers 503 otp_unavailable);
# they are never written to a log.
#
# Monitoring (--with-monitoring): Debian's prometheus and prometheus-node-exporter, both on
# loopback only; the server serves /metrics on a private listener (ATOME_METRICS_LISTEN=
# 127.0.0.1:9464) that Prometheus scrapes, with the alert rules of deploy/prometheus/alerts.yml.
#
# Supported: Debian 12, Ubuntu 22.04 and later (apt + systemd). Other systems are refused for
# now; the OS-specific steps live in os_* functions so another family (FreeBSD with rc.d is
# next) can be added beside them. Running it again changes nothing that is already right.
set -euo pipefail

PREFIX=/opt/atome
DATA_DIR=/var/lib/atome
LOG_DIR=/var/log/atome
CONF_DIR=/etc/atome
ENV_FILE=$CONF_DIR/atome.env
SECRET_FILE=$CONF_DIR/secret
UNIT_FILE=/etc/systemd/system/atome.service
NFT_FILE=$CONF_DIR/atome.nft
TURN_SECRET_FILE=$CONF_DIR/turn-secret
SYSCTL_FILE=/etc/sysctl.d/60-atome-udp.conf
# Bytes of UDP socket buffer each media worker asks for each way (the server's udp.rs).
UDP_BUFFER=4194304
TURN_CONF=/etc/turnserver.conf
TURN_TLS_DIR=/etc/coturn/tls
SERVICE_USER=atome
PROM_CONF=/etc/prometheus/prometheus.yml
PROM_ALERTS=/etc/prometheus/atome-alerts.yml
PROM_DEFAULT=/etc/default/prometheus
NODE_DEFAULT=/etc/default/prometheus-node-exporter

BINARY=""
RECORDING=1
PORT=443
RTC_PORT=40000
WORKERS=""
ANNOUNCED_IP=""
TLS_CERT=""
TLS_KEY=""
DOMAIN=""
SMS_WEBHOOK_URL=""
START=1
TURN=1
TURN_PORT=3478
TURN_RELAY_PORTS=49152-49999
TURN_TLS=0
MONITORING=0
METRICS_PORT=9464
PROM_PORT=9090
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[atome-install] %s\n' "$*"; }
die() {
  printf '[atome-install] ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit "${1:-0}"
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
      --no-recording) RECORDING=0; shift ;;
      --port) PORT=${2:?--port needs a number}; shift 2 ;;
      --rtc-port) RTC_PORT=${2:?--rtc-port needs a number}; shift 2 ;;
      --workers) WORKERS=${2:?--workers needs a number}; shift 2 ;;
      --announced-ip) ANNOUNCED_IP=${2:?--announced-ip needs an address}; shift 2 ;;
      --tls-cert) TLS_CERT=${2:?--tls-cert needs a file}; shift 2 ;;
      --tls-key) TLS_KEY=${2:?--tls-key needs a file}; shift 2 ;;
      --domain) DOMAIN=${2:?--domain needs a name}; shift 2 ;;
      --sms-webhook-url) SMS_WEBHOOK_URL=${2:?--sms-webhook-url needs a URL}; shift 2 ;;
      --no-start) START=0; shift ;;
      --turn-port) TURN_PORT=${2:?--turn-port needs a number}; shift 2 ;;
      --turn-relay-ports) TURN_RELAY_PORTS=${2:?--turn-relay-ports needs MIN-MAX}; shift 2 ;;
      --no-turn) TURN=0; shift ;;
      --with-monitoring) MONITORING=1; shift ;;
      --metrics-port) METRICS_PORT=${2:?--metrics-port needs a number}; shift 2 ;;
      --prometheus-port) PROM_PORT=${2:?--prometheus-port needs a number}; shift 2 ;;
      -h | --help) usage 0 ;;
      *) printf 'unknown option %s\n' "$1" >&2; usage 2 ;;
    esac
  done
  if { [ -n "$TLS_CERT" ] && [ -z "$TLS_KEY" ]; } || { [ -z "$TLS_CERT" ] && [ -n "$TLS_KEY" ]; }; then
    die "--tls-cert and --tls-key go together"
  fi
  if [ -n "$SMS_WEBHOOK_URL" ] && ! [[ "$SMS_WEBHOOK_URL" =~ ^https?://[^\'[:space:]]+$ ]]; then
    die "--sms-webhook-url must be an http(s) URL without spaces or quotes"
  fi
  if [ -n "$BINARY" ] && [ ! -x "$BINARY" ]; then
    die "--binary $BINARY is not an executable file"
  fi
  [[ "$TURN_PORT" =~ ^[0-9]+$ ]] || die "--turn-port must be a port number"
  [[ "$TURN_RELAY_PORTS" =~ ^[0-9]+-[0-9]+$ ]] || die "--turn-relay-ports must be MIN-MAX (e.g. 49152-49999)"
  [[ "$METRICS_PORT" =~ ^[0-9]+$ ]] || die "--metrics-port must be a port number"
  [[ "$PROM_PORT" =~ ^[0-9]+$ ]] || die "--prometheus-port must be a port number"
  if [ "$MONITORING" = 1 ] && [ ! -f "$SRC_DIR/deploy/prometheus/alerts.yml" ]; then
    die "--with-monitoring installs $SRC_DIR/deploy/prometheus/alerts.yml, which is missing: run the installer from the repository"
  fi
  [ -n "$WORKERS" ] || WORKERS=$(nproc 2>/dev/null || echo 1)
}

# ---------------------------------------------------------------------------------------------
# OS-specific parts (apt + systemd family). A new family adds its own os_* functions.
# ---------------------------------------------------------------------------------------------

os_detect() {
  [ -r /etc/os-release ] || die "cannot read /etc/os-release: unsupported system"
  # shellcheck disable=SC1091
  . /etc/os-release
  case "${ID:-}:${VERSION_ID:-}" in
    debian:12* | debian:13*) OS_FAMILY=apt ;;
    ubuntu:2[2-9].*) OS_FAMILY=apt ;;
    *) die "unsupported system ${PRETTY_NAME:-unknown}: Debian 12 and Ubuntu 22.04+ only for now (FreeBSD is next)" ;;
  esac
  log "system: ${PRETTY_NAME:-$ID $VERSION_ID} (family $OS_FAMILY)"
}

os_packages_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  printf '%s\n' "${missing[@]}"
}

os_install_packages() {
  local wanted=(ca-certificates curl openssl sqlite3 nftables)
  [ "$RECORDING" = 1 ] && wanted+=(ffmpeg)
  [ "$TURN" = 1 ] && wanted+=(coturn)
  [ "$MONITORING" = 1 ] && wanted+=(prometheus prometheus-node-exporter)
  if [ -z "$BINARY" ]; then
    wanted+=(build-essential pkg-config)
    [ -f "$SRC_DIR/web/package.json" ] && wanted+=(nodejs npm)
  fi
  local missing
  mapfile -t missing < <(os_packages_missing "${wanted[@]}")
  if [ "${#missing[@]}" -eq 0 ] || [ -z "${missing[0]}" ]; then
    log "packages: all present (${wanted[*]})"
    return
  fi
  log "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

os_create_user() {
  if id "$SERVICE_USER" >/dev/null 2>&1; then
    log "user $SERVICE_USER: exists"
  else
    useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    log "user $SERVICE_USER: created"
  fi
}

systemd_running() {
  [ -d /run/systemd/system ]
}

os_install_service() {
  local unit
  unit=$(
    cat <<EOF
[Unit]
Description=Atome core server (video calls)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
EnvironmentFile=$ENV_FILE
WorkingDirectory=$PREFIX
ExecStart=$PREFIX/bin/atome
Restart=on-failure
RestartSec=2
# Each call holds a few sockets; 1,024 descriptors (the default) ran out under an idle-connection
# flood. The server also caps connections in all and per address (--max-connections*).
LimitNOFILE=65536
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ReadWritePaths=$DATA_DIR $LOG_DIR
StandardOutput=append:$LOG_DIR/atome.log
StandardError=append:$LOG_DIR/atome.log

[Install]
WantedBy=multi-user.target
EOF
  )
  write_if_changed "$UNIT_FILE" 0644 "$unit"
  if ! systemd_running; then
    log "systemd is not running here (container or chroot): unit installed, not started"
    return
  fi
  systemctl daemon-reload
  systemctl enable atome.service >/dev/null 2>&1
  if [ "$START" = 1 ]; then
    if [ "$CHANGED_ANY" = 1 ] || ! systemctl is-active --quiet atome.service; then
      systemctl restart atome.service
      log "service: (re)started"
    else
      log "service: running, nothing changed"
    fi
  fi
}

os_firewall() {
  local last=$((RTC_PORT + WORKERS - 1))
  local rules turn_rules=""
  if [ "$TURN" = 1 ]; then
    turn_rules="    udp dport $TURN_PORT accept
    tcp dport $TURN_PORT accept
    udp dport $TURN_RELAY_PORTS accept"
    [ "$TURN_TLS" = 1 ] && turn_rules="$turn_rules
    tcp dport 5349 accept"
  fi
  rules=$(
    cat <<EOF
# Atome: HTTPS/WSS, the WebRTC ports (one per media worker: UDP, and TCP for ICE-TCP), and
# coturn's (its port over UDP and TCP, 5349 for TLS, the relay range).
table inet atome {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport $PORT accept
    udp dport $RTC_PORT-$last accept
    tcp dport $RTC_PORT-$last accept
${turn_rules}
  }
}
EOF
  )
  write_if_changed "$NFT_FILE" 0644 "$rules"
  if ! command -v nft >/dev/null; then
    log "firewall: nft missing; rules written to $NFT_FILE"
  elif nft list tables >/dev/null 2>&1; then
    nft delete table inet atome >/dev/null 2>&1 || true
    nft -f "$NFT_FILE"
    log "firewall: tcp $PORT, udp/tcp $RTC_PORT-$last$([ "$TURN" = 1 ] && echo ", TURN $TURN_PORT udp/tcp, relay udp $TURN_RELAY_PORTS") open (nftables table inet atome)"
  else
    log "firewall: cannot reach nftables here (chroot or container); rules written to $NFT_FILE, load them with: nft -f $NFT_FILE"
  fi
}

# UDP socket buffers: each media worker asks for $UDP_BUFFER bytes each way, and the kernel caps
# that at net.core.rmem_max / wmem_max (Debian's default ~208 KiB): a keyframe's fan-out then
# overflows it and packets are lost before the server reads them. Raises both (never lowers
# them), now through /proc and at boot through $SYSCTL_FILE.
os_udp_buffers() {
  local key value want content="# Atome: room for each media worker's UDP socket buffers (install_full.sh)."
  for key in rmem_max wmem_max; do
    want=$UDP_BUFFER
    value=$(cat "/proc/sys/net/core/$key" 2>/dev/null) || value=""
    if [ -n "$value" ] && [ "$value" -gt "$want" ]; then want=$value; fi
    content="$content
net.core.$key = $want"
    if [ -z "$value" ]; then
      log "UDP buffers: cannot read /proc/sys/net/core/$key; set at the next boot by $SYSCTL_FILE"
    elif [ "$value" -lt "$want" ]; then
      if echo "$want" >"/proc/sys/net/core/$key" 2>/dev/null; then
        log "UDP buffers: net.core.$key $value -> $want"
      else
        log "UDP buffers: cannot raise net.core.$key here ($value); set at the next boot by $SYSCTL_FILE"
      fi
    fi
  done
  install -d -m 0755 "$(dirname "$SYSCTL_FILE")"
  write_if_changed "$SYSCTL_FILE" 0644 "$content"
}

# coturn as a service: enabled, and restarted when its configuration changed.
os_coturn_service() {
  [ "$TURN" = 1 ] || return 0
  systemd_running || return 0
  systemctl enable coturn.service >/dev/null 2>&1
  if [ "$TURN_CHANGED" = 1 ] || ! systemctl is-active --quiet coturn.service; then
    systemctl restart coturn.service
    log "coturn: (re)started"
  fi
}

# Prometheus and the node exporter as services: enabled, restarted when their configuration
# changed. (Their packages start them at install, on all addresses until configured: the
# restart after configure_monitoring puts them on loopback.)
os_monitoring_services() {
  [ "$MONITORING" = 1 ] || return 0
  systemd_running || return 0
  local s
  for s in prometheus prometheus-node-exporter; do
    systemctl enable "$s.service" >/dev/null 2>&1
    if [ "$MONITORING_CHANGED" = 1 ] || ! systemctl is-active --quiet "$s.service"; then
      systemctl restart "$s.service"
      log "$s: (re)started"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Portable parts
# ---------------------------------------------------------------------------------------------

CHANGED_ANY=0
TURN_CHANGED=0
MONITORING_CHANGED=0
METRICS_OK=0
MONITORING_STATUS="off (--with-monitoring installs Prometheus with the alert rules)"

# write_if_changed FILE MODE CONTENT: writes only when the content differs.
write_if_changed() {
  local file=$1 mode=$2 content=$3
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then
    return
  fi
  printf '%s\n' "$content" >"$file.tmp"
  chmod "$mode" "$file.tmp"
  mv "$file.tmp" "$file"
  CHANGED_ANY=1
  log "wrote $file"
}

make_dirs() {
  install -d -m 0755 "$PREFIX" "$PREFIX/bin" "$CONF_DIR"
  install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
  install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$LOG_DIR"
  install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR/tls"
}

ensure_rust() {
  if command -v cargo >/dev/null; then
    return
  fi
  # Needs the internet: the toolchain pinned in rust-toolchain.toml comes from rustup.
  log "cargo missing: installing rustup and the pinned toolchain"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
}

install_binary() {
  local src=$BINARY
  if [ -z "$src" ]; then
    ensure_rust
    log "building the server (cargo build --release --locked)"
    (cd "$SRC_DIR" && cargo build --release --locked -p atome)
    src=${CARGO_TARGET_DIR:-$SRC_DIR/target}/release/atome
  fi
  if [ -f "$PREFIX/bin/atome" ] && cmp -s "$src" "$PREFIX/bin/atome"; then
    log "binary: up to date"
  else
    install -m 0755 "$src" "$PREFIX/bin/atome"
    CHANGED_ANY=1
    log "binary: installed $PREFIX/bin/atome"
  fi
}

install_web() {
  local dist=$SRC_DIR/web/dist
  if [ -f "$SRC_DIR/web/package.json" ] && [ -z "$BINARY" ]; then
    # Its dependencies declare Node >= 22: with an older system Node (Debian 12 has 18) the script
    # builds with Node 22 from the npm registry, kept in $HOME/.cache/atome-node.
    log "building the web client (scripts/build-web.sh: npm ci && npm run build)"
    "$SRC_DIR/scripts/build-web.sh" || die "the web client did not build (see above)"
  fi
  if [ -f "$dist/index.html" ]; then
    install -d -m 0755 "$PREFIX/web"
    cp -a "$dist/." "$PREFIX/web/"
    log "web client: installed in $PREFIX/web"
  else
    log "web client: no built bundle to install (web/dist absent)"
  fi
}

install_tls() {
  local cert=$CONF_DIR/tls/cert.pem key=$CONF_DIR/tls/key.pem
  if [ -n "$TLS_CERT" ]; then
    install -m 0644 "$TLS_CERT" "$cert"
    install -m 0640 -g "$SERVICE_USER" "$TLS_KEY" "$key"
    log "tls: using the given certificate"
  elif [ -n "$DOMAIN" ]; then
    # Needs the domain to point here and port 80 reachable from the internet.
    command -v certbot >/dev/null || apt-get install -y -qq certbot
    certbot certonly --standalone --non-interactive --agree-tos --register-unsafely-without-email -d "$DOMAIN"
    install -m 0644 "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" "$cert"
    install -m 0640 -g "$SERVICE_USER" "/etc/letsencrypt/live/$DOMAIN/privkey.pem" "$key"
    log "tls: certificate for $DOMAIN from Let's Encrypt"
  elif [ -f "$cert" ] && [ -f "$key" ]; then
    log "tls: keeping the existing certificate"
  else
    local name=${ANNOUNCED_IP:-localhost}
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$name" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1${ANNOUNCED_IP:+,IP:$ANNOUNCED_IP}" \
      -keyout "$key.tmp" -out "$cert" >/dev/null 2>&1
    chgrp "$SERVICE_USER" "$key.tmp"
    chmod 0640 "$key.tmp"
    mv "$key.tmp" "$key"
    CHANGED_ANY=1
    log "tls: generated a self-signed certificate (browsers will warn; give --tls-cert/--tls-key or --domain)"
  fi
}

detect_ip() {
  [ -n "$ANNOUNCED_IP" ] && return
  ANNOUNCED_IP=$(hostname -I 2>/dev/null | awk '{print $1}')
  [ -n "$ANNOUNCED_IP" ] || ANNOUNCED_IP=127.0.0.1
}

# The server secret keys the stored hashes of one-time codes: 32 random bytes, readable by the
# service user only (the server refuses a file others may read). Generated once, then kept.
install_secret() {
  if [ -f "$SECRET_FILE" ]; then
    log "secret: keeping $SECRET_FILE"
    return
  fi
  (
    umask 077
    head -c 32 /dev/urandom >"$SECRET_FILE.tmp"
  )
  chown "$SERVICE_USER:$SERVICE_USER" "$SECRET_FILE.tmp"
  chmod 0600 "$SECRET_FILE.tmp"
  mv "$SECRET_FILE.tmp" "$SECRET_FILE"
  CHANGED_ANY=1
  log "secret: generated $SECRET_FILE"
}

# Lines of the configuration for one-time codes: a webhook if we have its URL, else codes off.
sms_config() {
  if [ -n "$SMS_WEBHOOK_URL" ]; then
    # Quoted: read both by systemd and by the shell (a query string may hold '&').
    printf '%s\n' "ATOME_SMS_SENDER=webhook" "ATOME_SMS_WEBHOOK_URL='$SMS_WEBHOOK_URL'"
  else
    printf '%s\n' "ATOME_SMS_SENDER=none"
  fi
}

write_env() {
  if [ -f "$ENV_FILE" ]; then
    log "config: keeping $ENV_FILE"
    upgrade_env
    return
  fi
  local ffmpeg=/usr/bin/ffmpeg
  [ "$RECORDING" = 1 ] || ffmpeg=/nonexistent/ffmpeg
  cat >"$ENV_FILE.tmp" <<EOF
# Atome server configuration (see 'atome --help'). Written once by install_full.sh, never
# overwritten: edit it and restart the service.
ATOME_LISTEN=0.0.0.0:$PORT
ATOME_DATA_DIR=$DATA_DIR
ATOME_TLS_CERT=$CONF_DIR/tls/cert.pem
ATOME_TLS_KEY=$CONF_DIR/tls/key.pem
ATOME_WORKERS=$WORKERS
ATOME_RTC_LISTEN_IP=0.0.0.0
ATOME_RTC_ANNOUNCED_IP=$ANNOUNCED_IP
ATOME_RTC_PORT=$RTC_PORT
ATOME_WEB_DIR=$PREFIX/web
ATOME_FFMPEG=$ffmpeg
ATOME_SECRET_FILE=$SECRET_FILE
# One-time codes: webhook (POSTs {to, text} to ATOME_SMS_WEBHOOK_URL), or none (codes off: sign-in
# by code answers 503). Never 'log' here: it writes codes to the log (development only).
$(sms_config)
$(turn_config)
$(metrics_config)
ATOME_PHONE_REGION=FR
# Media tuning, defaults shown: a media transport silent this long after first contact is closed
# (the room hears producerClosed); a signaling socket silent this long is a leave; how long video
# consumers keep sent packets to answer NACKs (~11 KiB per 100 ms per 1 Mbit/s consumer).
#ATOME_RTC_IDLE_SECONDS=30
#ATOME_WS_IDLE_SECONDS=60
#ATOME_NACK_HISTORY_MS=500
# Behind a reverse proxy that terminates TLS: its address(es), so that per-address limits see the
# clients it reports (X-Forwarded-For / Forwarded) and not the proxy. Connection caps, defaults:
#ATOME_TRUSTED_PROXIES=127.0.0.1
#ATOME_MAX_CONNECTIONS=8192
#ATOME_MAX_CONNECTIONS_PER_IP=256
#ATOME_HTTP_HEADER_TIMEOUT_SECONDS=20
EOF
  chmod 0640 "$ENV_FILE.tmp"
  chgrp "$SERVICE_USER" "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  CHANGED_ANY=1
  log "config: wrote $ENV_FILE"
}

# Safety fixes to a configuration an older installer wrote (the rest of the file is kept): the
# development sender 'log' wrote one-time codes to the log; the secret moves under $CONF_DIR.
upgrade_env() {
  if grep -q '^ATOME_SMS_SENDER=log$' "$ENV_FILE"; then
    sed -i 's/^ATOME_SMS_SENDER=log$/ATOME_SMS_SENDER=none/' "$ENV_FILE"
    CHANGED_ANY=1
    log "config: ATOME_SMS_SENDER=log wrote one-time codes to the log: now none (codes off; set webhook and ATOME_SMS_WEBHOOK_URL to send them)"
  fi
  if ! grep -q '^ATOME_SECRET_FILE=' "$ENV_FILE"; then
    printf 'ATOME_SECRET_FILE=%s\n' "$SECRET_FILE" >>"$ENV_FILE"
    CHANGED_ANY=1
    log "config: added ATOME_SECRET_FILE=$SECRET_FILE"
  fi
  if [ "$MONITORING" = 1 ] && ! grep -q '^ATOME_METRICS_LISTEN=' "$ENV_FILE"; then
    printf 'ATOME_METRICS_LISTEN=127.0.0.1:%s\n' "$METRICS_PORT" >>"$ENV_FILE"
    CHANGED_ANY=1
    log "config: added ATOME_METRICS_LISTEN=127.0.0.1:$METRICS_PORT (metrics for the local Prometheus)"
  fi
  if [ "$TURN" = 1 ] && ! grep -q '^ATOME_TURN_URLS=' "$ENV_FILE"; then
    turn_config >>"$ENV_FILE"
    CHANGED_ANY=1
    log "config: added TURN (ATOME_TURN_URLS, ATOME_TURN_SECRET_FILE)"
  fi
}

# Lines of the server's configuration for its metrics: a private listener with --with-monitoring,
# else a hint (without it, /metrics is served on ATOME_LISTEN, to anyone who asks).
metrics_config() {
  printf '%s\n' "# Prometheus metrics (/metrics) on a private plain-HTTP listener; unset, they are served on" \
    "# ATOME_LISTEN to anyone. install_full.sh --with-monitoring sets it and scrapes it."
  if [ "$MONITORING" = 1 ]; then
    printf 'ATOME_METRICS_LISTEN=127.0.0.1:%s\n' "$METRICS_PORT"
  else
    printf '#ATOME_METRICS_LISTEN=127.0.0.1:%s\n' "$METRICS_PORT"
  fi
}

# Where Prometheus reaches the server's /metrics: the configured metrics listener (a wildcard
# address is reached on loopback); empty when metrics are on the main listener.
metrics_target() {
  local addr
  addr=$(configured ATOME_METRICS_LISTEN)
  case "$addr" in
    0.0.0.0:*) addr=127.0.0.1:${addr##*:} ;;
    "[::]:"*) addr="[::1]:${addr##*:}" ;;
  esac
  printf '%s\n' "$addr"
}

# ours_or_pristine FILE PACKAGE: FILE may be (re)written: absent, written by us (first line), or
# the package's own default, untouched. A file someone edited is left alone.
ours_or_pristine() {
  local file=$1 pkg=$2 sum
  [ -f "$file" ] || return 0
  head -n 1 "$file" | grep -q '^# Written by install_full.sh' && return 0
  sum=$(dpkg-query -W -f='${Conffiles}\n' "$pkg" 2>/dev/null | awk -v f="$file" '$1 == f { print $2 }')
  [ -n "$sum" ] && [ "$(md5sum <"$file" | cut -d' ' -f1)" = "$sum" ]
}

# write_owned FILE PACKAGE CONTENT: write_if_changed, unless someone edited FILE (then said).
write_owned() {
  if ours_or_pristine "$1" "$2"; then
    write_if_changed "$1" 0644 "$3"
  else
    log "monitoring: $1 was edited (no 'Written by install_full.sh' first line): left as is"
  fi
}

# Prometheus (--with-monitoring): the alert rules, a configuration that scrapes the server's
# metrics listener, the node exporter and itself, both daemons bound to loopback.
configure_monitoring() {
  [ "$MONITORING" = 1 ] || return 0
  local target before=$CHANGED_ANY mark
  target=$(metrics_target)
  [ -n "$target" ] || die "monitoring: $ENV_FILE has no ATOME_METRICS_LISTEN (metrics would be public on ATOME_LISTEN): add ATOME_METRICS_LISTEN=127.0.0.1:$METRICS_PORT"
  mark="# Written by install_full.sh --with-monitoring, and again on each run: delete this line to keep
# your own edits (the installer then leaves this file alone)."
  CHANGED_ANY=0
  write_if_changed "$PROM_ALERTS" 0644 "$(cat "$SRC_DIR/deploy/prometheus/alerts.yml")"
  write_owned "$PROM_CONF" prometheus "$(
    cat <<EOF
$mark
# Prometheus for the Atome server on this machine (example with comments: deploy/prometheus/).
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $PROM_ALERTS
# Firing alerts show on Prometheus' /alerts page; to be notified, install an Alertmanager
# (Debian: prometheus-alertmanager) and uncomment:
# alerting:
#   alertmanagers:
#     - static_configs:
#         - targets: ["127.0.0.1:9093"]
scrape_configs:
  - job_name: atome
    static_configs:
      - targets: ["$target"]
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:9100"]
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
EOF
  )"
  write_owned "$PROM_DEFAULT" prometheus "$mark
# Prometheus on loopback only: reach it through an SSH tunnel or an authenticating proxy.
ARGS=\"--web.listen-address=127.0.0.1:$PROM_PORT\""
  write_owned "$NODE_DEFAULT" prometheus-node-exporter "$mark
# The node exporter on loopback only: the local Prometheus scrapes it.
ARGS=\"--web.listen-address=127.0.0.1:9100\""
  MONITORING_CHANGED=$CHANGED_ANY
  CHANGED_ANY=$before
  promtool check config "$PROM_CONF" >/dev/null 2>&1 || die "monitoring: promtool check config $PROM_CONF fails (run it to see why)"
  log "monitoring: Prometheus scrapes $target with the rules of $PROM_ALERTS (promtool: valid)"
}

# TURN over TLS (5349) only with a certificate browsers trust: a self-signed one is refused.
turn_tls_decide() {
  local cert=$CONF_DIR/tls/cert.pem
  TURN_TLS=0
  [ "$TURN" = 1 ] && [ -f "$cert" ] || return 0
  [ "$(openssl x509 -noout -issuer -nameopt compat -in "$cert" | sed 's/^issuer=//')" != \
    "$(openssl x509 -noout -subject -nameopt compat -in "$cert" | sed 's/^subject=//')" ] && TURN_TLS=1
  return 0
}

# The secret shared by the server and coturn (TURN REST API): root-owned, readable by atome.
install_turn_secret() {
  [ "$TURN" = 1 ] || return 0
  if [ -f "$TURN_SECRET_FILE" ]; then
    log "turn secret: keeping $TURN_SECRET_FILE"
    return
  fi
  (
    umask 077
    openssl rand -hex 32 >"$TURN_SECRET_FILE.tmp"
  )
  chgrp "$SERVICE_USER" "$TURN_SECRET_FILE.tmp"
  chmod 0640 "$TURN_SECRET_FILE.tmp"
  mv "$TURN_SECRET_FILE.tmp" "$TURN_SECRET_FILE"
  CHANGED_ANY=1
  log "turn secret: generated $TURN_SECRET_FILE"
}

# Lines of the server's configuration for TURN: its URLs and the secret file.
turn_config() {
  [ "$TURN" = 1 ] || return 0
  local host=${DOMAIN:-$ANNOUNCED_IP} urls
  urls="turn:$host:$TURN_PORT?transport=udp,turn:$host:$TURN_PORT?transport=tcp"
  [ "$TURN_TLS" = 1 ] && [ -n "$DOMAIN" ] && urls="$urls,turns:$DOMAIN:5349?transport=tcp"
  printf '%s\n' "# TURN: coturn on this machine, with the secret of static-auth-secret in $TURN_CONF" \
    "ATOME_TURN_URLS='$urls'" "ATOME_TURN_SECRET_FILE=$TURN_SECRET_FILE"
}

# coturn's configuration: REST API secret, its ports, relaying only to public addresses and to
# this server's media address (never to loopback), TLS with a trusted certificate.
configure_coturn() {
  [ "$TURN" = 1 ] || return 0
  local announced conf tls allowed=""
  announced=$(configured ATOME_RTC_ANNOUNCED_IP)
  case "$announced" in
    127.* | ::1 | "") ;;
    *) allowed="allowed-peer-ip=$announced" ;;
  esac
  tls="no-tls
no-dtls"
  if [ "$TURN_TLS" = 1 ]; then
    install -d -m 0750 -o root -g turnserver "$TURN_TLS_DIR"
    install -m 0644 "$CONF_DIR/tls/cert.pem" "$TURN_TLS_DIR/cert.pem"
    install -m 0640 -g turnserver "$CONF_DIR/tls/key.pem" "$TURN_TLS_DIR/key.pem"
    tls="tls-listening-port=5349
cert=$TURN_TLS_DIR/cert.pem
pkey=$TURN_TLS_DIR/key.pem
no-tlsv1
no-tlsv1_1"
  fi
  install -d -m 0750 -o turnserver -g turnserver /var/log/turnserver
  conf=$(
    cat <<EOF
# Written by install_full.sh for Atome on each run: change its options (--turn-port,
# --turn-relay-ports) rather than this file.
listening-port=$TURN_PORT
min-port=${TURN_RELAY_PORTS%-*}
max-port=${TURN_RELAY_PORTS#*-}
realm=atome
use-auth-secret
static-auth-secret=$(cat "$TURN_SECRET_FILE")
fingerprint
no-cli
no-software-attribute
no-multicast-peers
no-rfc5780
stale-nonce=600
denied-peer-ip=0.0.0.0-0.255.255.255
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=100.64.0.0-100.127.255.255
denied-peer-ip=169.254.0.0-169.254.255.255
denied-peer-ip=172.16.0.0-172.31.255.255
denied-peer-ip=192.168.0.0-192.168.255.255
denied-peer-ip=198.18.0.0-198.19.255.255
$allowed
$tls
log-file=/var/log/turnserver/turnserver.log
simple-log
EOF
  )
  local before=$CHANGED_ANY
  CHANGED_ANY=0
  write_if_changed "$TURN_CONF" 0640 "$conf"
  chgrp turnserver "$TURN_CONF"
  TURN_CHANGED=$CHANGED_ANY
  CHANGED_ANY=$before
  log "coturn: port $TURN_PORT udp/tcp, relay udp $TURN_RELAY_PORTS, TLS $([ "$TURN_TLS" = 1 ] && echo "on 5349" || echo "off (no trusted certificate)")"
}

# configured NAME: the value of NAME in the configuration (empty if unset).
configured() {
  sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1
}

# The port the configuration listens on (the file wins over --port on later runs).
configured_port() {
  sed -n 's/^ATOME_LISTEN=.*:\([0-9]*\)$/\1/p' "$ENV_FILE" | tail -n 1
}

# stop_started PID: stops a server started once for a check (and its child), if any.
stop_started() {
  [ -n "$1" ] || return 0
  pkill -TERM -P "$1" 2>/dev/null || true
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

health_check() {
  local port url tmp_pid=""
  port=$(configured_port)
  url="https://127.0.0.1:$port/health"
  if ! (systemd_running && systemctl is-active --quiet atome.service); then
    # No service manager here: start the server once, as the service would, to check it.
    log "health: starting the server once to check it"
    (
      set -a
      # shellcheck disable=SC1090
      . "$ENV_FILE"
      set +a
      cd "$PREFIX"
      exec runuser -u "$SERVICE_USER" -- "$PREFIX/bin/atome"
    ) >>"$LOG_DIR/health-check.log" 2>&1 &
    tmp_pid=$!
  fi
  local ok=0 body=""
  for _ in $(seq 1 50); do
    if body=$(curl -fsSk --max-time 2 "$url" 2>/dev/null) && printf '%s' "$body" | grep -q '"status":"ok"'; then
      ok=1
      break
    fi
    sleep 0.2
  done
  local metrics
  metrics=$(metrics_target)
  if [ "$ok" = 1 ] && [ -n "$metrics" ]; then
    for _ in $(seq 1 10); do
      curl -fsS --max-time 2 "http://$metrics/metrics" 2>/dev/null | grep -q '^atome_worker_up' && METRICS_OK=1 && break
      sleep 0.2
    done
  fi
  stop_started "$tmp_pid"
  [ "$ok" = 1 ] || die "health check failed: $url (see $LOG_DIR)"
  log "health: ok ($body)"
  if [ -n "$metrics" ]; then
    [ "$METRICS_OK" = 1 ] || die "metrics check failed: no atome_worker_up at http://$metrics/metrics (see $LOG_DIR)"
    log "metrics: served on http://$metrics/metrics"
  fi
}

# Prometheus answers and has loaded the alert rules (started once here where systemd does not
# run, as its unit would, on a scratch storage dir); MONITORING_STATUS says how it went.
monitoring_check() {
  [ "$MONITORING" = 1 ] || return 0
  local tmp_pid="" tsdb="" rules="" ok=0 n
  if ! (systemd_running && systemctl is-active --quiet prometheus.service); then
    log "prometheus: starting it once to check it"
    tsdb=$(mktemp -d /tmp/atome-prometheus-check.XXXXXX)
    chown prometheus: "$tsdb"
    runuser -u prometheus -- /usr/bin/prometheus --config.file="$PROM_CONF" --storage.tsdb.path="$tsdb" \
      --web.listen-address="127.0.0.1:$PROM_PORT" >>"$LOG_DIR/health-check.log" 2>&1 &
    tmp_pid=$!
  fi
  # Up to 60 s: on a slow disk Prometheus answers 503 while its database opens.
  for _ in $(seq 1 300); do
    if rules=$(curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/rules" 2>/dev/null) &&
      grep -q '"name":"AtomeServerDown"' <<<"$rules"; then
      ok=1
      break
    fi
    sleep 0.2
  done
  stop_started "$tmp_pid"
  [ -z "$tsdb" ] || rm -rf "$tsdb"
  [ "$ok" = 1 ] || die "prometheus check failed: no Atome alert rules at http://127.0.0.1:$PROM_PORT/api/v1/rules (see $LOG_DIR/health-check.log)"
  n=$(grep -o '"type":"alerting"' <<<"$rules" | wc -l)
  MONITORING_STATUS="Prometheus on 127.0.0.1:$PROM_PORT ($n alert rules from $PROM_ALERTS), scraping $(metrics_target) and the node exporter (127.0.0.1:9100)"
  log "prometheus: answers on 127.0.0.1:$PROM_PORT with $n alert rules"
}

# coturn answers a STUN binding request on its port (started once here where systemd does not
# run, as its unit would); TURN_STATUS says how it went.
turn_check() {
  TURN_STATUS="off (--no-turn)"
  [ "$TURN" = 1 ] || return 0
  local tmp_pid="" out="" ok=0
  if ! (systemd_running && systemctl is-active --quiet coturn.service); then
    log "coturn: starting it once to check it"
    runuser -u turnserver -- /usr/bin/turnserver -c "$TURN_CONF" --pidfile= >>"$LOG_DIR/health-check.log" 2>&1 &
    tmp_pid=$!
  fi
  for _ in $(seq 1 25); do
    out=$(timeout 3 turnutils_stunclient -p "$TURN_PORT" 127.0.0.1 2>&1 || true)
    if grep -q 'reflexive addr' <<<"$out"; then
      ok=1
      break
    fi
    sleep 0.2
  done
  stop_started "$tmp_pid"
  [ "$ok" = 1 ] || die "coturn check failed: no STUN answer on 127.0.0.1:$TURN_PORT (see /var/log/turnserver)"
  local tls=""
  [ "$TURN_TLS" = 1 ] && tls=", 5349 tls"
  TURN_STATUS="coturn ok: $TURN_PORT udp/tcp$tls, relay udp $TURN_RELAY_PORTS"
  log "coturn: answers on $TURN_PORT"
}

# One line on one-time codes for the status block, from the configuration in force.
otp_status() {
  case "$(configured ATOME_SMS_SENDER)" in
    webhook) echo "on (SMS through the webhook set in $ENV_FILE)" ;;
    none) echo "OFF: no SMS gateway (sign-in by code answers 503); rerun on a fresh config with --sms-webhook-url URL, or set ATOME_SMS_SENDER=webhook and ATOME_SMS_WEBHOOK_URL in $ENV_FILE" ;;
    *) echo "$(configured ATOME_SMS_SENDER) (see $ENV_FILE)" ;;
  esac
}

# One line on /metrics for the status block, from the configuration in force.
metrics_status() {
  local target
  target=$(metrics_target)
  if [ -n "$target" ]; then
    echo "http://$target/metrics (private listener, ATOME_METRICS_LISTEN)"
  else
    echo "/metrics on the main listener, public: set ATOME_METRICS_LISTEN in $ENV_FILE (or rerun with --with-monitoring)"
  fi
}

status_block() {
  local port
  port=$(configured_port)
  cat <<EOF

==================== Atome is installed ====================
URL:        https://${DOMAIN:-$ANNOUNCED_IP}:$port/   (health: /health)
Media:      UDP $RTC_PORT-$((RTC_PORT + WORKERS - 1)) on $ANNOUNCED_IP ($WORKERS workers)
Binary:     $PREFIX/bin/atome
Config:     $ENV_FILE   (edit, then restart the service)
Data:       $DATA_DIR   Logs: $LOG_DIR
TLS:        $CONF_DIR/tls/
Secret:     $SECRET_FILE   (keys stored one-time codes; keep it out of database backups)
Codes:      $(otp_status)
Service:    $UNIT_FILE $(systemd_running && echo "(systemctl status atome)" || echo "(installed; start it where systemd runs)")
Firewall:   $NFT_FILE
UDP:        $SYSCTL_FILE (socket buffers up to $UDP_BUFFER bytes)
TURN:       $TURN_STATUS
Metrics:    $(metrics_status)
Monitoring: $MONITORING_STATUS
Recording:  $([ "$RECORDING" = 1 ] && echo "on (ffmpeg)" || echo "off (--no-recording)")
Next:       point a DNS name here and rerun with --domain NAME for a trusted certificate.
=============================================================
EOF
}

main() {
  parse_args "$@"
  [ "$(id -u)" = 0 ] || die "run as root"
  install -d -m 0755 "$LOG_DIR"
  exec > >(tee -a "$LOG_DIR/install.log") 2>&1
  log "install started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  os_detect
  os_install_packages
  os_create_user
  make_dirs
  install_binary
  install_web
  detect_ip
  install_tls
  turn_tls_decide
  install_secret
  install_turn_secret
  write_env
  configure_coturn
  configure_monitoring
  os_install_service
  os_coturn_service
  os_monitoring_services
  os_firewall
  os_udp_buffers
  health_check
  turn_check
  monitoring_check
  status_block
  log "install finished"
}

main "$@"
