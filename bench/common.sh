# Shared by the scripts in bench/ (sourced, never run): a release build, a scratch
# directory, the processes started (stopped by their PIDs at exit), free loopback ports,
# and an nginx main config around a script's own servers.

cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Waits until every given loopback port accepts connections (30 s at most each).
wait_for_ports() {
    for port in "$@"; do
        for _ in $(seq 300); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    done
}

# nginx_config BODY: a one-worker, foreground nginx config in $work whose http block
# holds BODY.
nginx_config() {
    cat <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  keepalive_requests 100000;
$1
}
NGINX
}
