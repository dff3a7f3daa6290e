#!/usr/bin/env bash
# install_full.sh: installs and configures the Atome core server on a bare machine, unattended.
#
#   sudo ./install_full.sh [options]
#
#   --binary PATH        install this prebuilt server binary (skips the Rust toolchain and build)
#   --web-dist DIR       install this prebuilt web bundle (skips Node.js and npm)
#   --no-recording       do not install FFmpeg (recording is then unavailable)
#   --port N             HTTPS/WSS port (default 443)
#   --rtc-port N         first WebRTC UDP port; worker i uses N+i (default 40000)
#   --workers N          media workers, one UDP port each (default: number of cores)
#   --announced-ip IP    public address given to browsers (default: the domain's or this host's)
#   --tls-cert PEM --tls-key PEM   use this certificate (else a self-signed one is generated)
#   --domain NAME [--email ADDR]   get a Let's Encrypt certificate with certbot (needs NAME to
#                        resolve here and port 80 reachable from the internet)
#   --firewall auto|nftables|ufw|none   (default auto: ufw when it is active, else nftables)
#   --ssh-port N         keep this SSH port open too (the sshd configuration is read anyway)
#   --no-start           install and enable the service but do not (re)start it
#
# Supported: Debian 12+ and Ubuntu 22.04+ (apt + systemd). Other systems are refused; every
# OS-specific step is a "<family>_<step>" function (debian_*), so another family (FreeBSD with
# rc.d is next) is added beside them. Without --binary the server is built from this checkout
# with cargo (rustup installs the toolchain pinned in rust-toolchain.toml when cargo is missing).
# A second run changes nothing that is already right: /etc/atome/atome.env is written once and
# never overwritten. Everything is logged to /var/log/atome/install.log.
# shellcheck disable=SC2317 # the os_* steps are called indirectly, through "os STEP"
set -euo pipefail
umask 022

PREFIX=/opt/atome
DATA_DIR=/var/lib/atome
LOG_DIR=/var/log/atome
CONF_DIR=/etc/atome
TLS_DIR=$CONF_DIR/tls
ENV_FILE=$CONF_DIR/atome.env
NFT_FILE=$CONF_DIR/atome.nft
UNIT_FILE=/etc/systemd/system/atome.service
CACHE_DIR=/var/cache/atome
SERVICE_USER=atome
# Node.js major used to build the web bundle: Debian 12's and Ubuntu 24.04's nodejs package;
# elsewhere the same major comes from NodeSource's apt repository.
NODE_MAJOR=18

BINARY=""
WEB_DIST=""
RECORDING=1
PORT=443
RTC_PORT=40000
WORKERS=""
ANNOUNCED_IP=""
TLS_CERT=""
TLS_KEY=""
DOMAIN=""
EMAIL=""
FIREWALL=auto
SSH_PORTS=()
START=1
GIVEN=() # options given on the command line (to warn when the existing config differs)
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHANGES=()

log() { printf '[atome-install] %s\n' "$*"; }
warn() { printf '[atome-install] WARNING: %s\n' "$*"; }
die() {
  printf '[atome-install] ERROR: %s\n' "$*" >&2
  exit 1
}
changed() {
  CHANGES+=("$1")
  log "changed: $1"
}

usage() {
  sed -n "2,/^set -euo/p" "${BASH_SOURCE[0]}" | sed "/^set -euo/d; /shellcheck/d; s/^# \{0,1\}//"
  exit "${1:-0}"
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
      --web-dist) WEB_DIST=${2:?--web-dist needs a directory}; shift 2 ;;
      --no-recording) RECORDING=0; shift ;;
      --port) PORT=${2:?--port needs a number}; GIVEN+=(port); shift 2 ;;
      --rtc-port) RTC_PORT=${2:?--rtc-port needs a number}; GIVEN+=(rtc-port); shift 2 ;;
      --workers) WORKERS=${2:?--workers needs a number}; GIVEN+=(workers); shift 2 ;;
      --announced-ip) ANNOUNCED_IP=${2:?--announced-ip needs an address}; GIVEN+=(announced-ip); shift 2 ;;
      --tls-cert) TLS_CERT=${2:?--tls-cert needs a file}; shift 2 ;;
      --tls-key) TLS_KEY=${2:?--tls-key needs a file}; shift 2 ;;
      --domain) DOMAIN=${2:?--domain needs a name}; shift 2 ;;
      --email) EMAIL=${2:?--email needs an address}; shift 2 ;;
      --firewall) FIREWALL=${2:?--firewall needs auto, nftables, ufw or none}; shift 2 ;;
      --ssh-port) SSH_PORTS+=("${2:?--ssh-port needs a number}"); shift 2 ;;
      --no-start) START=0; shift ;;
      -h | --help) usage 0 ;;
      *) printf 'unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
  done
  local n
  for n in "$PORT" "$RTC_PORT" "${WORKERS:-1}" "${SSH_PORTS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
  done
  if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then die "--port out of range: $PORT"; fi
  if { [ -n "$TLS_CERT" ] && [ -z "$TLS_KEY" ]; } || { [ -z "$TLS_CERT" ] && [ -n "$TLS_KEY" ]; }; then
    die "--tls-cert and --tls-key go together"
  fi
  [ -z "$TLS_CERT" ] || [ -z "$DOMAIN" ] || die "--domain and --tls-cert exclude each other"
  [ -z "$TLS_CERT" ] || { [ -r "$TLS_CERT" ] && [ -r "$TLS_KEY" ]; } || die "cannot read $TLS_CERT or $TLS_KEY"
  [ -z "$BINARY" ] || [ -x "$BINARY" ] || die "--binary $BINARY is not an executable file"
  [ -z "$WEB_DIST" ] || [ -f "$WEB_DIST/index.html" ] || die "--web-dist $WEB_DIST has no index.html"
  case "$FIREWALL" in auto | nftables | ufw | none) ;; *) die "--firewall: auto, nftables, ufw or none" ;; esac
  [ -n "$WORKERS" ] || WORKERS=$(nproc 2>/dev/null || echo 1)
  [ "$WORKERS" -ge 1 ] || die "--workers must be at least 1"
  if [ "$RTC_PORT" != 0 ] && [ $((RTC_PORT + WORKERS - 1)) -gt 65535 ]; then
    die "--rtc-port $RTC_PORT + $WORKERS workers goes past 65535"
  fi
}

# =============================================================================================
# OS-specific steps. os STEP ARGS... calls ${OS_FAMILY}_STEP. A new family (freebsd_*: pkg,
# pw useradd, rc.d script, pf) implements the same steps; the portable part does not change.
# =============================================================================================

os() {
  local step=$1
  shift
  "${OS_FAMILY}_${step}" "$@"
}

os_detect() {
  local release=/etc/os-release
  [ -r "$release" ] || release=/usr/lib/os-release
  [ -r "$release" ] || die "unsupported system: no /etc/os-release (Debian 12+ and Ubuntu 22.04+ only for now)"
  local id version pretty
  # shellcheck disable=SC1090
  id=$(. "$release" && printf '%s' "${ID:-}")
  # shellcheck disable=SC1090
  version=$(. "$release" && printf '%s' "${VERSION_ID:-}")
  # shellcheck disable=SC1090
  pretty=$(. "$release" && printf '%s' "${PRETTY_NAME:-$id $version}")
  OS_FAMILY=""
  case "$id" in
    debian) [ "${version%%.*}" -ge 12 ] 2>/dev/null && OS_FAMILY=debian ;;
    ubuntu) [ "${version%%.*}" -ge 22 ] 2>/dev/null && OS_FAMILY=debian ;;
  esac
  [ "$(uname -s)" = Linux ] || OS_FAMILY=""
  [ -n "$OS_FAMILY" ] || die "unsupported system: $pretty. This installer supports Debian 12+ and Ubuntu 22.04+ (apt, systemd); FreeBSD is planned. Nothing was changed."
  OS_PRETTY=$pretty
  OS_ID=$id
}

# ---- Debian / Ubuntu ------------------------------------------------------------------------

debian_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}

APT_UPDATED=0
debian_apt_install() {
  local missing=()
  mapfile -t missing < <(debian_missing "$@")
  [ "${#missing[@]}" -gt 0 ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt: updating package lists"
    apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null ||
    die "apt-get install ${missing[*]} failed"
  changed "packages installed: ${missing[*]}"
}

debian_packages() {
  local wanted=(ca-certificates curl openssl sqlite3 logrotate util-linux iproute2)
  [ "$RECORDING" = 1 ] && wanted+=(ffmpeg)
  case "$(pick_firewall)" in
    nftables) wanted+=(nftables) ;;
    ufw) wanted+=(ufw) ;;
  esac
  [ -z "$DOMAIN" ] || wanted+=(certbot)
  [ -n "$BINARY" ] || wanted+=(build-essential pkg-config)
  debian_apt_install "${wanted[@]}"
  log "packages: ${wanted[*]} present"
}

# Node.js $NODE_MAJOR and npm, for the web bundle.
debian_node() {
  local have
  have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$have" -ge "$NODE_MAJOR" ] && command -v npm >/dev/null; then
    log "node: $(node --version) present (pinned major $NODE_MAJOR or later)"
    return
  fi
  local candidate
  candidate=$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9]*\)\..*/\2/p')
  if [ "$candidate" = "$NODE_MAJOR" ]; then
    log "node: Node.js $NODE_MAJOR from the $OS_ID archive"
    debian_apt_install nodejs npm
  else
    # Not testable offline: NodeSource's repository for the pinned major (Ubuntu 22.04 ships 12).
    log "node: the $OS_ID archive has nodejs ${candidate:-none}; adding NodeSource's node_$NODE_MAJOR.x"
    debian_apt_install gnupg
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key |
      gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    printf 'deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_%s.x nodistro main\n' \
      "$NODE_MAJOR" >/etc/apt/sources.list.d/nodesource.list
    printf 'Package: nodejs\nPin: origin deb.nodesource.com\nPin-Priority: 1001\n' >/etc/apt/preferences.d/nodesource
    APT_UPDATED=0
    debian_apt_install nodejs
  fi
  node --version >/dev/null || die "Node.js installation failed"
}

debian_create_user() {
  if id "$SERVICE_USER" >/dev/null 2>&1; then
    log "user: $SERVICE_USER exists"
  else
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "Atome server" "$SERVICE_USER"
    changed "system user $SERVICE_USER created"
  fi
}

debian_init_running() {
  [ -d /run/systemd/system ]
}

debian_service_install() {
  write_file "$UNIT_FILE" 0644 root:root "$(
    cat <<EOF
# Written by install_full.sh (rewritten on each run: put local changes in a drop-in,
# systemctl edit atome).
[Unit]
Description=Atome core server (video calls)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
EnvironmentFile=$ENV_FILE
WorkingDirectory=$DATA_DIR
ExecStart=$PREFIX/bin/atome
Restart=on-failure
RestartSec=2s
TimeoutStopSec=20s
LimitNOFILE=65536
UMask=0077
# Port 443 without root.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$DATA_DIR $LOG_DIR
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
LockPersonality=yes
SystemCallArchitectures=native
StandardOutput=append:$LOG_DIR/atome.log
StandardError=append:$LOG_DIR/atome.log

[Install]
WantedBy=multi-user.target
EOF
  )"
  UNIT_CHANGED=$LAST_WRITE_CHANGED
  if command -v systemctl >/dev/null; then
    # Works without a running systemd too (it only creates the symlink).
    if ! systemctl is-enabled --quiet atome.service 2>/dev/null; then
      systemctl enable atome.service >/dev/null 2>&1 || die "systemctl enable atome.service failed"
      changed "service enabled (starts at boot)"
    else
      log "service: enabled"
    fi
  else
    warn "systemctl not found: the unit is installed but not enabled"
  fi
}

# Starts or restarts the service when something changed (or it is not running).
debian_service_start() {
  if ! debian_init_running; then
    SERVICE_STATE="installed and enabled, NOT started: systemd is not running here (container or chroot)"
    log "service: systemd is not running here (container or chroot): the unit is installed and enabled but not started"
    return
  fi
  [ "$UNIT_CHANGED" = 0 ] || systemctl daemon-reload
  if [ "$START" = 0 ]; then
    SERVICE_STATE="installed and enabled, not started (--no-start)"
    return
  fi
  if [ "${#CHANGES[@]}" -gt 0 ] || ! systemctl is-active --quiet atome.service; then
    systemctl restart atome.service
    changed "service (re)started"
  else
    log "service: running, nothing to restart"
  fi
  SERVICE_STATE="running (systemctl status atome; logs in $LOG_DIR/atome.log)"
}

debian_service_running() {
  debian_init_running && systemctl is-active --quiet atome.service
}

debian_logrotate() {
  write_file /etc/logrotate.d/atome 0644 root:root "$LOG_DIR/*.log {
	weekly
	rotate 8
	compress
	delaycompress
	missingok
	notifempty
	copytruncate
	su root $SERVICE_USER
}"
}

# Let's Encrypt through certbot (standalone on port 80). Not testable offline.
debian_certbot() {
  local args=(certonly --standalone --non-interactive --agree-tos --keep-until-expiring -d "$DOMAIN")
  if [ -n "$EMAIL" ]; then args+=(-m "$EMAIL"); else args+=(--register-unsafely-without-email); fi
  certbot "${args[@]}" || die "certbot could not get a certificate for $DOMAIN (does it resolve here? is port 80 reachable?)"
  # Renewals (certbot's timer) copy the new certificate in and restart the server.
  install -d -m 0755 /etc/letsencrypt/renewal-hooks/deploy
  write_file /etc/letsencrypt/renewal-hooks/deploy/atome 0755 root:root "#!/bin/sh
# Written by install_full.sh: hands a renewed certificate for $DOMAIN to Atome.
set -e
[ \"\$RENEWED_LINEAGE\" = /etc/letsencrypt/live/$DOMAIN ] || exit 0
install -m 0644 \"\$RENEWED_LINEAGE/fullchain.pem\" $TLS_DIR/cert.pem
install -m 0640 -g $SERVICE_USER \"\$RENEWED_LINEAGE/privkey.pem\" $TLS_DIR/key.pem
systemctl try-restart atome.service"
  install_file "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" "$TLS_DIR/cert.pem" 0644 root:root
  install_file "/etc/letsencrypt/live/$DOMAIN/privkey.pem" "$TLS_DIR/key.pem" 0640 "root:$SERVICE_USER"
}

# The SSH ports sshd listens on (kept open by the firewall).
debian_ssh_ports() {
  local ports=""
  if command -v sshd >/dev/null; then
    ports=$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2}')
  fi
  if [ -z "$ports" ] && [ -r /etc/ssh/sshd_config ]; then
    ports=$(awk 'tolower($1) == "port" {print $2}' /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*.conf 2>/dev/null)
  fi
  # shellcheck disable=SC2086 # one port per word
  printf '%s\n' ${ports:-22} "${SSH_PORTS[@]}" | sort -un
}

debian_firewall() {
  local tool
  tool=$(pick_firewall)
  local first=$CFG_RTC_PORT last=$((CFG_RTC_PORT + CFG_WORKERS - 1))
  local ssh
  ssh=$(debian_ssh_ports | paste -sd, -)
  if [ "$first" = 0 ]; then
    warn "ATOME_RTC_PORT=0 (free ports): no fixed UDP ports to open"
  fi
  case "$tool" in
    none)
      FIREWALL_STATE="not managed (--firewall none): open tcp $CFG_PORT and udp $first-$last yourself"
      log "firewall: not managed (--firewall none)"
      ;;
    ufw)
      if in_chroot; then
        FIREWALL_STATE="ufw: NOT applied (chroot); run the installer again on the booted system"
        warn "firewall: cannot apply ufw rules inside a chroot"
        return
      fi
      local p
      for p in ${ssh//,/ }; do ufw allow "$p/tcp" >/dev/null; done
      ufw allow "$CFG_PORT/tcp" >/dev/null
      [ -z "$DOMAIN" ] || ufw allow 80/tcp >/dev/null
      [ "$first" = 0 ] || ufw allow "$first:$last/udp" >/dev/null
      if ! ufw status | grep -q '^Status: active'; then
        ufw --force enable >/dev/null
        changed "ufw enabled"
      fi
      FIREWALL_STATE="ufw: tcp $CFG_PORT (and ssh $ssh) and udp $first-$last allowed"
      log "firewall: $FIREWALL_STATE"
      ;;
    nftables)
      local tcp="$ssh,$CFG_PORT"
      [ -z "$DOMAIN" ] || tcp="$tcp,80"
      local udp_rule="udp dport $first-$last accept"
      [ "$first" != 0 ] || udp_rule="# no fixed WebRTC ports (ATOME_RTC_PORT=0)"
      write_file "$NFT_FILE" 0644 root:root "#!/usr/sbin/nft -f
# Written by install_full.sh (rewritten on each run). Incoming traffic is dropped except:
# SSH, HTTPS/WSS for Atome (tcp $CFG_PORT), the WebRTC UDP ports (one per media worker), ICMP,
# DHCP replies and established connections. Loaded at boot from /etc/nftables.conf.
table inet atome
delete table inet atome
table inet atome {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iif lo accept
		meta l4proto { icmp, icmpv6 } accept
		udp dport 68 accept
		ip6 saddr fe80::/10 udp dport 546 accept
		tcp dport { $tcp } accept
		$udp_rule
	}
}"
      local nft_changed=$LAST_WRITE_CHANGED
      if [ -f /etc/nftables.conf ] && ! grep -qF "include \"$NFT_FILE\"" /etc/nftables.conf; then
        printf '\n# Atome (install_full.sh)\ninclude "%s"\n' "$NFT_FILE" >>/etc/nftables.conf
        changed "/etc/nftables.conf includes $NFT_FILE"
      fi
      if command -v systemctl >/dev/null && ! systemctl is-enabled --quiet nftables.service 2>/dev/null; then
        systemctl enable nftables.service >/dev/null 2>&1 && changed "nftables.service enabled (rules at boot)"
      fi
      if in_chroot; then
        FIREWALL_STATE="nftables rules in $NFT_FILE, NOT applied (chroot: the kernel's firewall is the host's); loaded at boot"
        log "firewall: inside a chroot the rules cannot be applied live: written to $NFT_FILE, loaded at boot by nftables.service"
      elif ! nft -c -f "$NFT_FILE" >/dev/null 2>&1; then
        FIREWALL_STATE="nftables rules in $NFT_FILE, NOT applied (nftables unavailable here, e.g. a container)"
        warn "firewall: nftables cannot be used here: rules written to $NFT_FILE, apply them with nft -f $NFT_FILE"
      else
        if [ "$nft_changed" = 1 ] || ! nft list table inet atome >/dev/null 2>&1; then
          nft -f "$NFT_FILE" || die "nft -f $NFT_FILE failed"
          changed "firewall rules applied"
        fi
        FIREWALL_STATE="nftables (table inet atome): tcp $tcp and udp $first-$last open, other input dropped"
        log "firewall: $FIREWALL_STATE"
      fi
      ;;
  esac
}

# =============================================================================================
# Portable steps
# =============================================================================================

pick_firewall() {
  case "$FIREWALL" in
    auto)
      if command -v ufw >/dev/null && ufw status 2>/dev/null | grep -q '^Status: active'; then
        echo ufw
      else
        echo nftables
      fi
      ;;
    *) echo "$FIREWALL" ;;
  esac
}

in_chroot() {
  if command -v ischroot >/dev/null; then
    ischroot
    return
  fi
  [ "$(stat -c %d:%i / 2>/dev/null)" != "$(stat -c %d:%i /proc/1/root/. 2>/dev/null)" ]
}

# write_file PATH MODE OWNER CONTENT: (re)writes PATH only when its content, mode or owner differ.
LAST_WRITE_CHANGED=0
write_file() {
  local path=$1 mode=$2 owner=$3 content=$4
  LAST_WRITE_CHANGED=0
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    fix_perms "$path" "$mode" "$owner"
    return
  fi
  printf '%s\n' "$content" >"$path.tmp.$$"
  chmod "$mode" "$path.tmp.$$"
  chown "$owner" "$path.tmp.$$"
  mv -f "$path.tmp.$$" "$path"
  LAST_WRITE_CHANGED=1
  changed "wrote $path"
}

# install_file SRC DEST MODE OWNER: copies SRC when DEST differs.
install_file() {
  local src=$1 dest=$2 mode=$3 owner=$4
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    fix_perms "$dest" "$mode" "$owner"
    return
  fi
  cp "$src" "$dest.tmp.$$"
  chmod "$mode" "$dest.tmp.$$"
  chown "$owner" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
  changed "installed $dest"
}

fix_perms() {
  local path=$1 mode=$2 owner=$3
  if [ "$(stat -c '%a %U:%G' "$path")" != "$mode $owner" ] && [ "$(stat -c '%a %U:%G' "$path")" != "${mode#0} $owner" ]; then
    chmod "$mode" "$path"
    chown "$owner" "$path"
    changed "permissions of $path set to $mode $owner"
  fi
}

ensure_dir() {
  local path=$1 mode=$2 owner=$3
  if [ -d "$path" ]; then
    fix_perms "$path" "$mode" "$owner"
  else
    install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
    changed "created $path"
  fi
}

make_dirs() {
  ensure_dir "$PREFIX" 0755 root:root
  ensure_dir "$PREFIX/bin" 0755 root:root
  ensure_dir "$CONF_DIR" 0755 root:root
  ensure_dir "$TLS_DIR" 0750 "root:$SERVICE_USER"
  ensure_dir "$DATA_DIR" 0700 "$SERVICE_USER:$SERVICE_USER"
  ensure_dir "$LOG_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
  ensure_dir "$CACHE_DIR" 0755 root:root
}

# Rust through rustup, only when cargo is missing and no --binary was given. Needs the internet
# (https://sh.rustup.rs); the toolchain is the one pinned in rust-toolchain.toml.
ensure_rust() {
  if command -v cargo >/dev/null; then
    log "rust: $(cargo --version) present"
    return
  fi
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    return
  fi
  log "rust: cargo missing, installing rustup (toolchain from rust-toolchain.toml)"
  curl -fsSL --proto '=https' --tlsv1.2 https://sh.rustup.rs -o "$CACHE_DIR/rustup-init.sh" ||
    die "cannot download rustup (no internet?): give a prebuilt server with --binary"
  sh "$CACHE_DIR/rustup-init.sh" -y --profile minimal --default-toolchain none --no-modify-path
  export PATH="$HOME/.cargo/bin:$PATH"
  changed "rustup installed"
}

install_binary() {
  local src=$BINARY
  if [ -z "$src" ]; then
    if [ ! -f "$SRC_DIR/Cargo.lock" ] || [ ! -d "$SRC_DIR/crates/atome" ]; then
      die "no --binary and no source checkout next to this script ($SRC_DIR)"
    fi
    ensure_rust
    log "build: cargo build --release --locked -p atome (first build takes a while)"
    (cd "$SRC_DIR" && CARGO_TARGET_DIR=$CACHE_DIR/target cargo build --release --locked -p atome) ||
      die "cargo build failed"
    src=$CACHE_DIR/target/release/atome
  fi
  "$src" --version >/dev/null 2>&1 || die "$src does not run on this system (wrong architecture or libc?)"
  install_file "$src" "$PREFIX/bin/atome" 0755 root:root
  log "binary: $("$PREFIX/bin/atome" --version)"
}

# The web client: --web-dist, else built from web/ of this checkout with npm ci (lockfile),
# else a web/dist already built next to this script.
install_web() {
  local dist=""
  if [ -n "$WEB_DIST" ]; then
    dist=$WEB_DIST
  elif [ -f "$SRC_DIR/web/package.json" ]; then
    os node
    # Build in a copy: the checkout stays untouched (and owned by its user).
    local build=$CACHE_DIR/web-build
    install -d -m 0755 "$build"
    (cd "$SRC_DIR/web" && tar --exclude=./node_modules --exclude=./dist -cf - .) | (cd "$build" && tar -xf -)
    log "web: npm ci && npm run build (Node.js $(node --version))"
    # Trust the system's CAs too (a TLS-inspecting proxy the system trusts, for instance).
    [ -n "${NODE_EXTRA_CA_CERTS:-}" ] || [ ! -f /etc/ssl/certs/ca-certificates.crt ] ||
      export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    (cd "$build" && rm -rf dist && npm ci --no-audit --no-fund --loglevel=error --cache "$CACHE_DIR/npm" && npm run build --silent) ||
      die "building the web client failed"
    dist=$build/dist
  elif [ -f "$SRC_DIR/web/dist/index.html" ]; then
    dist=$SRC_DIR/web/dist
  fi
  if [ -z "$dist" ]; then
    log "web: no web client to install (no web/ next to this script, no --web-dist)"
    return
  fi
  if [ -d "$PREFIX/web" ] && diff -rq "$dist" "$PREFIX/web" >/dev/null 2>&1; then
    log "web: $PREFIX/web up to date"
    return
  fi
  rm -rf "$PREFIX/web.new"
  cp -r "$dist" "$PREFIX/web.new"
  chmod -R u=rwX,go=rX "$PREFIX/web.new"
  chown -R root:root "$PREFIX/web.new"
  rm -rf "$PREFIX/web.old"
  [ ! -d "$PREFIX/web" ] || mv "$PREFIX/web" "$PREFIX/web.old"
  mv "$PREFIX/web.new" "$PREFIX/web"
  rm -rf "$PREFIX/web.old"
  changed "web client installed in $PREFIX/web"
}

is_ipv4() { [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; }

detect_ip() {
  [ -z "$ANNOUNCED_IP" ] || return 0
  if [ -n "$DOMAIN" ]; then
    ANNOUNCED_IP=$(getent ahostsv4 "$DOMAIN" 2>/dev/null | awk 'NR == 1 {print $1}')
  fi
  if [ -z "$ANNOUNCED_IP" ] && command -v ip >/dev/null; then
    ANNOUNCED_IP=$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  fi
  [ -n "$ANNOUNCED_IP" ] || ANNOUNCED_IP=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$' || true)
  [ -n "$ANNOUNCED_IP" ] || ANNOUNCED_IP=127.0.0.1
}

install_tls() {
  local cert=$TLS_DIR/cert.pem key=$TLS_DIR/key.pem
  if [ -n "$TLS_CERT" ]; then
    install_file "$TLS_CERT" "$cert" 0644 root:root
    install_file "$TLS_KEY" "$key" 0640 "root:$SERVICE_USER"
    TLS_STATE="the given certificate ($(openssl x509 -noout -subject -in "$cert" | sed 's/^subject=//'))"
  elif [ -n "$DOMAIN" ]; then
    os certbot
    TLS_STATE="Let's Encrypt for $DOMAIN (renewed by certbot's timer)"
  elif [ -f "$cert" ] && [ -f "$key" ] && openssl x509 -checkend 2592000 -noout -in "$cert" >/dev/null 2>&1; then
    fix_perms "$key" 0640 "root:$SERVICE_USER"
    log "tls: keeping $cert"
    TLS_STATE="existing certificate in $TLS_DIR"
  else
    local san
    san="DNS:localhost,DNS:$(hostname),IP:127.0.0.1"
    is_ipv4 "$ANNOUNCED_IP" && [ "$ANNOUNCED_IP" != 127.0.0.1 ] && san="$san,IP:$ANNOUNCED_IP"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$(hostname)" -addext "subjectAltName=$san" \
      -keyout "$key.tmp.$$" -out "$cert.tmp.$$" >/dev/null 2>&1 || die "openssl could not make a certificate"
    chown "root:$SERVICE_USER" "$key.tmp.$$"
    chmod 0640 "$key.tmp.$$"
    chmod 0644 "$cert.tmp.$$"
    mv -f "$key.tmp.$$" "$key"
    mv -f "$cert.tmp.$$" "$cert"
    changed "self-signed certificate generated ($san)"
    TLS_STATE="self-signed (browsers warn): use --domain NAME or --tls-cert/--tls-key for a trusted one"
  fi
}

write_env() {
  if [ -f "$ENV_FILE" ]; then
    fix_perms "$ENV_FILE" 0640 "root:$SERVICE_USER"
    log "config: keeping $ENV_FILE (never overwritten)"
    return
  fi
  local ffmpeg=/usr/bin/ffmpeg
  [ "$RECORDING" = 1 ] || ffmpeg=/nonexistent/ffmpeg-not-installed
  local rtc_ip=$ANNOUNCED_IP
  [ -n "$DOMAIN" ] && ! is_ipv4 "$rtc_ip" && rtc_ip=127.0.0.1
  write_file "$ENV_FILE" 0640 "root:$SERVICE_USER" "# Atome server settings, read by atome.service (EnvironmentFile=). Written once by
# install_full.sh on $(date -u +%Y-%m-%d) and never overwritten: edit it, then
# systemctl restart atome. Every setting is also a flag: $PREFIX/bin/atome --help
ATOME_LISTEN=0.0.0.0:$PORT
ATOME_DATA_DIR=$DATA_DIR
ATOME_TLS_CERT=$TLS_DIR/cert.pem
ATOME_TLS_KEY=$TLS_DIR/key.pem
# Media workers: one thread and one UDP port each (ATOME_RTC_PORT + i). The firewall opens
# these ports: after changing them run install_full.sh again.
ATOME_WORKERS=$WORKERS
ATOME_RTC_LISTEN_IP=0.0.0.0
# The address browsers send media to: this server's public IP.
ATOME_RTC_ANNOUNCED_IP=$rtc_ip
ATOME_RTC_PORT=$RTC_PORT
ATOME_WEB_DIR=$PREFIX/web
ATOME_FFMPEG=$ffmpeg
# One-time login codes: log (server log, for trying it out) or webhook (POSTs {to, text}).
ATOME_SMS_SENDER=log
#ATOME_SMS_WEBHOOK_URL=https://sms-gateway.example/send?token=...
ATOME_PHONE_REGION=FR
RUST_LOG=info
NO_COLOR=1"
}

# env_get KEY: the value of KEY in the environment file (last one wins, like systemd).
env_get() {
  sed -n "s/^[[:space:]]*$1=//p" "$ENV_FILE" | tail -n 1 | sed 's/^"\(.*\)"$/\1/'
}

# The effective settings are those of the environment file (an existing one wins over options).
load_config() {
  local listen
  listen=$(env_get ATOME_LISTEN)
  CFG_PORT=${listen##*:}
  CFG_HOST=${listen%:*}
  case "$CFG_HOST" in 0.0.0.0 | "[::]" | "") CFG_HOST=127.0.0.1 ;; esac
  CFG_RTC_PORT=$(env_get ATOME_RTC_PORT)
  CFG_RTC_PORT=${CFG_RTC_PORT:-40000}
  CFG_WORKERS=$(env_get ATOME_WORKERS)
  CFG_WORKERS=${CFG_WORKERS:-$(nproc)}
  CFG_ANNOUNCED=$(env_get ATOME_RTC_ANNOUNCED_IP)
  CFG_SCHEME=https
  [ -n "$(env_get ATOME_TLS_CERT)" ] || CFG_SCHEME=http
  local g
  for g in "${GIVEN[@]}"; do
    case "$g" in
      port) [ "$PORT" = "$CFG_PORT" ] || warn "--port $PORT ignored: $ENV_FILE says $CFG_PORT (edit it, then rerun)" ;;
      rtc-port) [ "$RTC_PORT" = "$CFG_RTC_PORT" ] || warn "--rtc-port $RTC_PORT ignored: $ENV_FILE says $CFG_RTC_PORT" ;;
      workers) [ "$WORKERS" = "$CFG_WORKERS" ] || warn "--workers $WORKERS ignored: $ENV_FILE says $CFG_WORKERS" ;;
      announced-ip) [ "$ANNOUNCED_IP" = "$CFG_ANNOUNCED" ] || warn "--announced-ip $ANNOUNCED_IP ignored: $ENV_FILE says $CFG_ANNOUNCED" ;;
    esac
  done
}

# Checks GET /health of the installed server. Where no service manager runs it, the server is
# started once for the check, as the unit would (its user, environment file, capability).
health_check() {
  local url="$CFG_SCHEME://$CFG_HOST:$CFG_PORT/health" pid="" body="" ok=0
  if [ "$START" = 0 ] && os init_running; then
    HEALTH_STATE="not checked (--no-start)"
    return
  fi
  if ! os service_running; then
    if curl -fsSk --max-time 2 "$url" >/dev/null 2>&1; then
      die "something already answers on $url: stop it first"
    fi
    log "health: no running service here; starting the server once to check it"
    (
      set -a
      # shellcheck disable=SC1090
      . "$ENV_FILE"
      set +a
      cd "$DATA_DIR"
      exec setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service --no-new-privs -- "$PREFIX/bin/atome"
    ) >>"$LOG_DIR/health-check.log" 2>&1 &
    pid=$!
  fi
  local i
  for i in $(seq 1 100); do
    if body=$(curl -fsSk --max-time 2 "$url" 2>/dev/null) && [[ $body == *'"status":"ok"'* ]]; then
      ok=1
      break
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ "$ok" = 1 ] || tail -n 20 "$LOG_DIR/health-check.log"
  fi
  [ "$ok" = 1 ] || die "health check failed: $url (logs in $LOG_DIR) after ${i}x0.2 s"
  local version want
  version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$body")
  want=$("$PREFIX/bin/atome" --version | awk '{print $2}')
  [ "$version" = "$want" ] || die "health: the server answering is version $version, the installed one is $want"
  log "health: ok ($url, version $version)"
  HEALTH_STATE="ok ($url answered, version $version)"
}

status_block() {
  local first=$CFG_RTC_PORT last=$((CFG_RTC_PORT + CFG_WORKERS - 1))
  local host=${DOMAIN:-$CFG_ANNOUNCED}
  local changes="none (everything was already in place)"
  [ "${#CHANGES[@]}" -eq 0 ] || changes="${#CHANGES[@]} (see above)"
  cat <<EOF

======================== Atome is installed ========================
URL:        $CFG_SCHEME://$host:$CFG_PORT/    (health: $CFG_SCHEME://$host:$CFG_PORT/health)
Health:     $HEALTH_STATE
Service:    $SERVICE_STATE
Media:      UDP $first-$last, announced as $CFG_ANNOUNCED ($CFG_WORKERS workers)
TLS:        $TLS_STATE
Firewall:   $FIREWALL_STATE
Recording:  $([ "$RECORDING" = 1 ] && echo "on ($(command -v ffmpeg || echo ffmpeg))" || echo "off (--no-recording)")
Binary:     $PREFIX/bin/atome ($("$PREFIX/bin/atome" --version))
Config:     $ENV_FILE (yours: never overwritten)
Data:       $DATA_DIR    Logs: $LOG_DIR (install.log, atome.log)
Changes:    $changes
Next:       - ATOME_SMS_SENDER=webhook + ATOME_SMS_WEBHOOK_URL in $ENV_FILE to send real SMS
              (with "log", login codes appear in $LOG_DIR/atome.log);
            - a trusted certificate: rerun with --domain NAME (DNS pointing here, port 80 open);
            - behind NAT, set ATOME_RTC_ANNOUNCED_IP to the public address;
            - after editing $ENV_FILE: systemctl restart atome (or rerun this installer).
====================================================================
EOF
}

run() {
  # One installer at a time.
  exec 9>"$LOG_DIR/install.lock"
  flock -n 9 || die "another install_full.sh is running"
  log "----- install_full.sh started $(date -u +%Y-%m-%dT%H:%M:%SZ): $0 $*"
  log "system: $OS_PRETTY ($(uname -m)), family $OS_FAMILY"
  HEALTH_STATE="not checked"
  SERVICE_STATE="unknown"
  FIREWALL_STATE="unknown"
  TLS_STATE="unknown"
  UNIT_CHANGED=0
  os packages
  os create_user
  make_dirs
  install_binary
  install_web
  detect_ip
  write_env
  load_config
  os firewall # before TLS: certbot needs port 80 open
  install_tls
  os logrotate
  os service_install
  os service_start
  health_check
  status_block
  log "----- finished: ${#CHANGES[@]} change(s)"
}

main() {
  parse_args "$@"
  [ "$(id -u)" = 0 ] || die "run as root (sudo $0 ...)"
  os_detect # refuses unsupported systems before touching anything
  install -d -m 0750 "$LOG_DIR"
  # Everything goes to the terminal and to install.log.
  run "$@" 2>&1 | tee -a "$LOG_DIR/install.log"
  exit "${PIPESTATUS[0]}"
}

main "$@"
