#!/usr/bin/env bash
# Memory per cached decision, loopback only: one verdict (release build) per authorizer
# kind, filled with N distinct allowed credentials (default 100,000) through
# /_resolver/auth-request, prints the growth of the process's resident set (VmRSS) per
# cached decision.
#   - static: N tokens in a tokens_file, each presented once;
#   - jwt:    N distinct HS256 tokens (claims sub, exp, roles), each presented once.
# The RSS before filling is taken after the configuration (and, for static, its N tokens)
# is loaded and a first decision made, so the figure is the cache's share.
# Usage: bench/memory.sh [entries]
# Stops by itself; only the processes it started are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
entries="${1:-100000}"

source bench/common.sh
secret="memory-bench-secret-of-at-least-32-bytes"

python3 - "$entries" "$work/tokens.toml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        f.write(f'[[tokens]]\ntoken = "static-token-{i:08d}"\nuser_id = "user-{i}"\nroles = ["reader"]\n')
PY

start() { # kind -> sets $pid and $port
    local kind="$1" admin
    port=$(free_port); admin=$(free_port)
    {
        cat <<TOML
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
workers = 1
[cache]
max_entries = $((entries * 2))
allow_ttl = "10m"
TOML
        if [ "$kind" = static ]; then
            printf '[authorizers.keys]\ntype = "static"\ntokens_file = "tokens.toml"\n'
        else
            printf '[authorizers.idp]\ntype = "jwt"\nissuers = ["bench"]\n'
            printf '[[authorizers.idp.keys]]\nalgorithms = ["HS256"]\nsecret = "%s"\n' "$secret"
        fi
    } > "$work/$kind.toml"
    RUST_LOG=warn ./target/release/verdict --config "$work/$kind.toml" > "$work/$kind.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_for_ports "$port"
}

fill() { # kind pid port
    python3 - "$1" "$2" "$3" "$entries" "$secret" <<'PY'
import base64, hashlib, hmac, http.client, json, sys, time
kind, pid, port, n, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
def token(i):
    if kind == "static":
        return f"static-token-{i:08d}"
    body = b64(json.dumps({"sub": f"user-{i}", "iss": "bench", "exp": exp, "roles": ["reader"]}).encode())
    signing = f"{header}.{body}".encode()
    return f"{header}.{body}.{b64(hmac.new(secret.encode(), signing, hashlib.sha256).digest())}"

conn = http.client.HTTPConnection("127.0.0.1", port)
def ask(i):
    conn.request("GET", "/_resolver/auth-request", headers={
        "Authorization": f"Bearer {token(i)}",
        "X-Original-URI": "/app/page", "X-Original-Method": "GET"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{kind}: credential {i} answered {response.status}")

ask(0)
before = rss_kib()
for i in range(1, n + 1):
    ask(i % n if kind == "static" else i)
time.sleep(1)
after = rss_kib()
print(f"{kind:6} {n} cached decisions: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
      f"{(after - before) * 1024 / n:.0f} bytes per cached decision")
PY
}

echo "one verdict per kind, one worker, ${entries} distinct credentials each" >&2
for kind in static jwt; do
    start "$kind"
    fill "$kind" "$pid" "$port"
    kill "$pid"
done
