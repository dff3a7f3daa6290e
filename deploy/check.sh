#!/usr/bin/env bash
# Checks the monitoring files in deploy/ against real tools and a real server:
#  1. promtool: prometheus.yml is a valid configuration, alerts.yml valid rules, and the unit
#     tests of alerts.test.yml pass;
#  2. the real server (dev login, loopback, a temporary data dir) and Debian's Prometheus scraping
#     it every second; once it has scraped twice, every query of the Grafana dashboard
#     (grafana/atome.json, Grafana's variables replaced) goes to Prometheus' query API: a query it
#     rejects fails the check; one that returns nothing is only reported (metrics this server
#     does not serve yet, or no traffic). The alert rules must evaluate without error there too.
#
#   deploy/check.sh [path/to/atome]     (default: $CARGO_TARGET_DIR/debug/atome)
#
# Installs Debian's prometheus when missing (as root, with apt); otherwise says it skips.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$HOME/.cache/atome-target}
binary=${1:-$target/debug/atome}
t0=$(date +%s)

fail() {
  printf 'FAIL: %s\n' "$*"
  exit 1
}

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v python3 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing prometheus (promtool and the server for this check)"
    had_prometheus=$(command -v prometheus || true)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus python3 >/dev/null
    # Where systemd runs, the package starts its own service on :9090: not wanted here.
    if [ -z "$had_prometheus" ] && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  else
    echo "deploy/check.sh skipped: promtool/prometheus (Debian package prometheus) or python3 missing, and cannot install them here (needs root and apt-get)"
    exit 0
  fi
fi
[ -x "$binary" ] || fail "no server binary at $binary (cargo build -p atome first)"

# ---- 1. promtool ----
promtool check config "$here/prometheus/prometheus.yml" >/dev/null || fail "promtool check config deploy/prometheus/prometheus.yml"
echo "PASS: promtool check config prometheus.yml"
promtool check rules "$here/prometheus/alerts.yml" >/dev/null || fail "promtool check rules deploy/prometheus/alerts.yml"
echo "PASS: promtool check rules alerts.yml"
promtool test rules "$here/prometheus/alerts.test.yml" || fail "promtool test rules deploy/prometheus/alerts.test.yml"
echo "PASS: promtool test rules alerts.test.yml"

# ---- 2. the server, Prometheus, the dashboard's queries ----
tmp=$(mktemp -d /tmp/atome-monitoring-check.XXXXXX)
server_pid=""
prom_pid=""
cleanup() {
  local pid
  for pid in $prom_pid $server_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
# A copy: the build folder's binary may be rebuilt while this runs.
cp "$binary" "$tmp/atome"

# Three free loopback ports (the kernel picks them; bound again just below).
read -r http_port metrics_port prom_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

"$tmp/atome" --dev-auth --listen "127.0.0.1:$http_port" --metrics-listen "127.0.0.1:$metrics_port" \
  --data-dir "$tmp/data" --workers 2 --rtc-port 0 --sms-sender file >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
  curl -fsS --max-time 1 "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { tail -n 20 "$tmp/server.log"; fail "the server exited at start"; }
  sleep 0.2
done
curl -fsS --max-time 2 "http://127.0.0.1:$metrics_port/metrics" | grep -q '^atome_worker_up' ||
  { tail -n 20 "$tmp/server.log"; fail "the server serves no atome_worker_up on --metrics-listen"; }
echo "PASS: server up, /metrics on 127.0.0.1:$metrics_port"
# A little HTTP traffic, so that the latency histogram has routes: health, a dev login, a 404.
for _ in 1 2 3; do curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null; done
curl -fsS -H 'content-type: application/json' -d '{"phone_e164":"+33611111111","display_name":"Check"}' \
  "http://127.0.0.1:$http_port/auth/dev-login" >/dev/null
curl -sS -o /dev/null "http://127.0.0.1:$http_port/no-such-page"
# And one signaling message (not a valid one: counted as type "invalid"), over a real WebSocket.
python3 - "$http_port" <<'EOF' || fail "no WebSocket on /ws"
import base64, os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(1024)
    if not chunk:
        break
    head += chunk
assert head.startswith(b"HTTP/1.1 101"), head[:80]
payload, mask = b"not a message", os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
s.recv(1024)  # the server's answer (an error), so the message was read and counted
s.close()
EOF

cp "$here/prometheus/alerts.yml" "$tmp/alerts.yml"
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: atome
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!

python3 - "$prom_port" "$here/grafana/atome.json" "$metrics_port" "$tmp/prometheus.log" <<'EOF'
import json, re, sys, time, urllib.parse, urllib.request

prom, dashboard, metrics_port, prom_log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{prom}"

def get(path, **params):
    """Prometheus' JSON answer; a body that is not JSON (the plain-text 503 "Service Unavailable"
    it serves while its database starts) becomes {"status": "unavailable", "error": <the text>}."""
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
    except urllib.error.HTTPError as e:  # 400/422: a rejected query, with Prometheus' reason
        body = e.read()
    try:
        return json.loads(body)
    except ValueError:
        return {"status": "unavailable", "error": body[:200].decode(errors="replace")}

def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)

def wait_until(what, seconds, ready):
    """Polls `ready()` every 0.3 s (a refused connection or an HTTP error counts as "not yet");
    after `seconds`, fails with `what` and the end of Prometheus' log."""
    deadline = time.time() + seconds
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if time.time() > deadline:
            print(open(prom_log).read()[-2000:])
            fail(f"{what} within {seconds} s")
        time.sleep(0.3)

def ready():
    with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
        return r.status == 200

def scraped_twice():
    r = get("/api/v1/query", query='count_over_time(up{job="atome"}[1m]) >= 2 and up{job="atome"} == 1')
    return r.get("status") == "success" and r["data"]["result"]

# Ready first: until its database is open, Prometheus answers 503 in plain text.
wait_until("Prometheus was not ready", 60, ready)
print("PASS: Prometheus ready")
# Two scrapes of the server, up both times.
wait_until("Prometheus did not scrape the server twice", 30, scraped_twice)
print("PASS: Prometheus scraped the server twice (up == 1)")

# Metric names the server serves, to tell "not served by this binary" from "no samples".
with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
    page = r.read().decode().splitlines()
    served = {re.split(r"[{ ]", l, 1)[0] for l in page if l and not l.startswith("#")}
    # Families announced without samples (per-peer figures with nobody in a call) are served too.
    served |= {l.split()[2] for l in page if l.startswith("# TYPE ")}
served |= {n[: -len(s)] for n in served for s in ("_bucket", "_sum", "_count") if n.endswith(s)}

# Grafana's variables: the ones of this dashboard match everything; intervals become fixed ones.
subst = {"__rate_interval": "30s", "__interval": "5s", "__range": "1m", "instance": ".*", "peer": ".*"}
def expand(expr):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in subst:
            fail(f"unknown Grafana variable ${name} in {expr}")
        return subst[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)

def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))

d = json.load(open(dashboard))
queries = with_data = 0
missing = set()
for p in panels(d["panels"]):
    for t in p.get("targets", []):
        expr = expand(t["expr"])
        r = get("/api/v1/query", query=expr)
        queries += 1
        if r.get("status") != "success":
            fail(f'panel "{p["title"]}" query {t["refId"]} rejected ({r.get("errorType")}: {r.get("error")}): {expr}')
        n = len(r["data"]["result"])
        names = set(re.findall(r"\batome_\w+", expr)) | ({"up"} if re.search(r"\bup\{", expr) else set())
        absent = sorted(m for m in names if m not in served and m != "up")
        if n:
            with_data += 1
            state = f"data ({n} series)"
        elif absent:
            missing.update(absent)
            state = "empty: not served by this server yet (" + ", ".join(absent) + ")"
        else:
            state = "empty: no samples (no traffic of that kind)"
        print(f'  {p["title"]} [{t["refId"]}]: {state}')

# The dashboard's variables: label_values(selector, label) through the label values API.
for v in d["templating"]["list"]:
    if v.get("type") != "query":
        continue
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
    if not m:
        fail(f'variable {v["name"]}: unsupported query {v["definition"]}')
    r = get(f"/api/v1/label/{m.group(2)}/values", **{"match[]": expand(m.group(1))})
    if r.get("status") != "success":
        fail(f'variable {v["name"]} rejected ({r.get("error")}): {v["definition"]}')
    print(f'  variable ${v["name"]}: {len(r["data"])} value(s)')

print(f"PASS: {queries} dashboard queries accepted by Prometheus, {with_data} with data"
      + (f"; metrics not served by this server yet: {', '.join(sorted(missing))}" if missing else ""))

# The alert rules, loaded by the same Prometheus, evaluate without error on the real series.
deadline = time.time() + 10
while True:
    groups = get("/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    if rules and all(r.get("lastEvaluation", "").startswith("0001") is False for r in rules):
        break
    if time.time() > deadline:
        fail("the alert rules were not evaluated within 10 s")
    time.sleep(0.3)
bad = [f'{r["name"]}: {r.get("lastError")}' for r in rules if r.get("health") != "ok"]
if bad:
    fail("alert rules in error: " + "; ".join(bad))
firing = [r["name"] for r in rules if r.get("state") != "inactive"]
print(f"PASS: {len(rules)} alert rules evaluate on the live series" + (f" (not inactive: {', '.join(firing)})" if firing else ", none pending or firing"))
EOF
echo "monitoring check: $(($(date +%s) - t0)) s"
