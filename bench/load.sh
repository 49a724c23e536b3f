#!/usr/bin/env bash
# Load comparison on this machine, loopback only, in one run, at 64 and 256 connections:
#   1. nginx alone answering `return 204`                    (the floor)
#   2. actix-web alone answering the same allow from constants (examples/constant_answer:
#      the floor of this stack)
#   3. verdict answering /_resolver/auth-request             (a cached static-token allow),
#      at log level warn and at the default info
#   4. nginx with the SHIPPED nginx/verdict.conf -> verdict -> app (`return 204`)
#   5. the same shipped file with nginx itself as the auth service (its ceiling), answering
#      with the same identity headers
#   6. verdict direct with `allow_ttl = "0s"` (every request decided, nothing stored), at
#      64 connections, whose p99 is compared with the cached one
# Prints requests/s, latency, new TCP connections per 1,000 requests and the CPU each
# process spent per request (front: the nginx running the shipped file; app: the nginx
# answering as the application and as its own auth service) for each run, and the ratios
# of the medians over the rounds (the scenarios interleaved in each round): verdict /
# nginx-204, verdict / actix floor, shipped / ceiling, and verdict's CPU per decision at
# info / warn.
# Usage: bench/load.sh [seconds per run, default 10] [rounds, default 3]
# Needs wrk and nginx (installed with apt-get when missing and running as root).
# Stops by itself; only the processes it started are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
rounds="${2:-3}"
threads=1

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y -qq "$( [ "$tool" = nginx ] && echo nginx-light || echo wrk )" >/dev/null
        else
            echo "bench/load.sh: $tool is missing" >&2; exit 1
        fi
    fi
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

source bench/common.sh
verdict_port=$(free_port); admin_port=$(free_port); quiet_port=$(free_port); quiet_admin=$(free_port)
nocache_port=$(free_port); nocache_admin=$(free_port)
nginx_port=$(free_port); ceiling_port=$(free_port); auth_port=$(free_port); app_port=$(free_port)
floor_port=$(free_port)
cargo build --release --quiet --example constant_answer

verdict_config() { # listen admin
    cat <<TOML
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
workers = 1
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "load-test-token"
user_id = "load"
TOML
}
verdict_config "$verdict_port" "$admin_port" > "$work/verdict.toml"
verdict_config "$quiet_port" "$quiet_admin" > "$work/quiet.toml"
{ verdict_config "$nocache_port" "$nocache_admin"; printf '[cache]\nallow_ttl = "0s"\ndeny_ttl = "0s"\n'; } > "$work/nocache.toml"
# the default log level (one line per decision) serves the shipped nginx config
./target/release/verdict --config "$work/verdict.toml" > "$work/verdict.log" 2>&1 &
info_pid=$!; pids+=($!)
RUST_LOG=warn ./target/release/verdict --config "$work/quiet.toml" > /dev/null 2>&1 &
quiet_pid=$!; pids+=($!)
RUST_LOG=warn ./target/release/verdict --config "$work/nocache.toml" > /dev/null 2>&1 &
nocache_pid=$!; pids+=($!)
./target/release/examples/constant_answer "$floor_port" > /dev/null 2>&1 &
floor_pid=$!; pids+=($!)

# The shipped file, twice: once asking verdict, once asking nginx's own `return 200`.
ship() { # listen-port auth-port
    sed -e "s/127.0.0.1:8080/127.0.0.1:$2/" \
        -e "s/127.0.0.1:9000/127.0.0.1:$app_port/" \
        -e "s/listen 80;/listen 127.0.0.1:$1;/" \
        -e "s/upstream verdict {/upstream verdict_$1 {/" -e "s#http://verdict/#http://verdict_$1/#" \
        -e "s/upstream app {/upstream app_$1 {/" -e "s#http://app;#http://app_$1;#" \
        -e "s/map \$http_upgrade \$verdict_app_connection/map \$http_upgrade \$verdict_app_connection_$1/" \
        -e "s/\$verdict_app_connection;/\$verdict_app_connection_$1;/" \
        nginx/verdict.conf
}
ship "$nginx_port" "$verdict_port" > "$work/shipped.conf"
ship "$ceiling_port" "$auth_port" > "$work/ceiling.conf"
# two nginx processes, so each one's CPU is its own: the front runs the shipped file
# (both copies), the app answers as the application and as nginx's own auth service
mkdir -p "$work/front" "$work/app"
work_root="$work"
work="$work_root/app" nginx_config "
  server { listen 127.0.0.1:$app_port; location / { return 204; } }
  server {
    listen 127.0.0.1:$auth_port;
    # the same identity verdict answers with (nginx leaves out the empty ones)
    location / {
      add_header x-authgear-session-valid true; add_header x-authgear-user-id load;
      add_header x-authgear-user-anonymous false; add_header x-authgear-user-verified false;
      add_header x-authgear-user-can-reauthenticate false; add_header x-session-name load;
      add_header x-accel-expires 59;
      return 200;
    }
  }" > "$work_root/app.conf"
work="$work_root/front" nginx_config "
  include $work_root/shipped.conf;
  include $work_root/ceiling.conf;" > "$work_root/front.conf"
"$nginx_bin" -c "$work/app.conf" -p "$work/app" -e "$work/app/error.log" &
app_pid=$!; pids+=($!)
"$nginx_bin" -c "$work/front.conf" -p "$work/front" -e "$work/front/error.log" &
front_pid=$!; pids+=($!)

wait_for_ports $verdict_port $quiet_port $nocache_port $nginx_port $ceiling_port $app_port $auth_port $floor_port

opens() { awk '/^Tcp:/ && ++n == 2 {print $6}' /proc/net/snmp; }
# CPU time of a process so far, in clock ticks (user + system, all its threads)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # name connections url [header]...  (CPU of the processes in $procs: "label:pid ...")
    local name="$1" connections="$2" url="$3"; shift 3
    local before after out rps p50 p99 requests per1000 cpu="" label pid
    declare -A start
    for entry in $procs; do start[$entry]=$(ticks "${entry#*:}"); done
    before=$(opens)
    out=$(wrk -t$threads -c"$connections" -d"${duration}s" --latency "$@" "$url")
    after=$(opens)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    per1000=$(python3 -c "print(f'{($after - $before) * 1000 / max($requests, 1):.1f}')")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    for entry in $procs; do
        label="${entry%%:*}"; pid="${entry#*:}"
        us=$(python3 -c "print(f'{($(ticks "$pid") - ${start[$entry]}) * 1e6 / $hz / max($requests, 1):.1f}')")
        cpu+=" $label $us"
        echo "$us" >> "$work/cpu.$connections.${name//[^a-z0-9]/_}.$label"
    done
    echo "$p99" >> "$work/p99.$connections.${name//[^a-z0-9]/_}"
    printf '%-36s c=%-4s %10s req/s  p50 %8s  p99 %8s  new TCP/1000 %6s  CPU us/req%s %s\n' \
        "$name" "$connections" "$rps" "$p50" "$p99" "$per1000" "$cpu" "$errors" >&2
    echo "$rps"
}

token=(-H 'Authorization: Bearer load-test-token')
direct=(-H 'X-Original-URI: /app/page?x=1' -H 'X-Original-Method: GET')
echo "loopback, ${duration}s per run, $rounds rounds, $(nproc) cores, one nginx worker, one verdict worker" >&2
record() { # key rps
    echo "$2" >> "$work/rps.$1"
}
for round in $(seq "$rounds"); do
    echo "round $round" >&2
    for c in 64 256; do
        procs="app:$app_pid"
        record base$c "$(run "nginx return 204" $c "http://127.0.0.1:$app_port/")"
        procs="actix:$floor_pid"
        record floor$c "$(run "actix constant answer" $c "http://127.0.0.1:$floor_port/_resolver/auth-request" "${token[@]}" "${direct[@]}")"
        procs="verdict:$quiet_pid"
        record quiet$c "$(run "verdict direct, cached, warn" $c "http://127.0.0.1:$quiet_port/_resolver/auth-request" "${token[@]}" "${direct[@]}")"
        procs="verdict:$info_pid"
        record info$c "$(run "verdict direct, cached, info" $c "http://127.0.0.1:$verdict_port/_resolver/auth-request" "${token[@]}" "${direct[@]}")"
        procs="front:$front_pid app:$app_pid"
        record ceiling$c "$(run "shipped nginx conf, nginx as auth" $c "http://127.0.0.1:$ceiling_port/app/page?x=1" "${token[@]}")"
        procs="front:$front_pid verdict:$info_pid app:$app_pid"
        record shipped$c "$(run "shipped nginx conf -> verdict" $c "http://127.0.0.1:$nginx_port/app/page?x=1" "${token[@]}")"
    done
    procs="verdict:$nocache_pid"
    run "verdict direct, allow_ttl 0s, warn" 64 "http://127.0.0.1:$nocache_port/_resolver/auth-request" \
        "${token[@]}" "${direct[@]}" > /dev/null
done
# how many of the shipped path's decisions the answer memo gave (the info instance serves it)
metrics=$(curl -s "http://127.0.0.1:$admin_port/metrics")
echo "info instance: $(awk '/^verdict_answer_memo_hits_total/ {print $2}' <<<"$metrics") answers from the memo of $(awk '/^verdict_decisions_total/ {s += $2} END {print s}' <<<"$metrics") decisions" >&2
python3 - "$work" <<'PY'
import re, statistics, sys
work = sys.argv[1]
def values(name):
    with open(f"{work}/{name}") as f:
        return [line.strip() for line in f if line.strip()]
def seconds(text):
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
def median(name, parse=float):
    return statistics.median(parse(v) for v in values(name))
cached = median("p99.64.verdict_direct__cached__warn", seconds)
uncached = median("p99.64.verdict_direct__allow_ttl_0s__warn", seconds)
print(f"medians of {len(values('rps.base64'))} rounds")
print(f"c=64: allow_ttl 0s p99 / cached p99 {uncached / cached:.2f}")
for c in (64, 256):
    base, floor, quiet, info, ceiling, shipped = (
        median(f"rps.{key}{c}") for key in ("base", "floor", "quiet", "info", "ceiling", "shipped"))
    cpu_warn = median(f"cpu.{c}.verdict_direct__cached__warn.verdict")
    cpu_info = median(f"cpu.{c}.verdict_direct__cached__info.verdict")
    print(f"c={c}: verdict/nginx-204 warn {quiet / base:.2f}, info {info / base:.2f}; "
          f"actix floor/nginx-204 {floor / base:.2f}; verdict/floor warn {quiet / floor:.2f}; "
          f"shipped/ceiling {shipped / ceiling:.2f}; "
          f"verdict CPU per decision info/warn {cpu_info / cpu_warn:.2f}")
PY
