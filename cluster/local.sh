#!/usr/bin/env bash
# A real multi-node Ray cluster on one machine, for development and tests.
#
#   cluster/local.sh up [--workers N] [--cpus-per-node C] [--head-cpus C] [--object-store-memory BYTES]
#   cluster/local.sh status
#   cluster/local.sh env        # `eval "$(cluster/local.sh env)"` points ray/ich-ray clients at the cluster
#   cluster/local.sh down
#
# The head and every worker are separate `ray start --block` processes, each the leader of its own
# session (setsid), so `down` stops exactly what `up` started: it signals the recorded PIDs and sweeps
# their sessions. It never runs `ray stop`, which would kill every Ray on the machine.
#
# Token authentication is on (RAY_AUTH_MODE=token) for every node; the token comes from RAY_AUTH_TOKEN,
# RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (generated with `ray get-auth-token --generate` if missing).
#
# Environment:
#   ICH_RAY_CLUSTER_DIR     state dir: PID files, cluster.env, logs, Ray temp dir
#                           (default /tmp/ich-ray-cluster-$UID; keep it short: Ray's socket paths are
#                           limited to ~107 characters)
#   ICH_RAY_DASHBOARD_PORT  dashboard / job-submission port (default 8265)
#   ICH_RAY_GCS_PORT        GCS port (default 6379)
#   ICH_RAY_CLIENT_PORT     Ray Client server port (default 10001)
#   ICH_RAY_BIN             the `ray` executable (default .venv/bin/ray, else `ray` on PATH)
#   ICH_RAY_START_TIMEOUT   seconds to wait for the nodes (default 240)
#   ICH_RAY_START_ATTEMPTS  tries per node when a raylet misses Ray's registration window (default 3)
#   ICH_RAY_STOP_TIMEOUT    seconds a node may drain before it is killed (default 45)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${ICH_RAY_CLUSTER_DIR:-/tmp/ich-ray-cluster-$(id -u)}"
DASHBOARD_PORT="${ICH_RAY_DASHBOARD_PORT:-8265}"
GCS_PORT="${ICH_RAY_GCS_PORT:-6379}"
CLIENT_PORT="${ICH_RAY_CLIENT_PORT:-10001}"
START_TIMEOUT="${ICH_RAY_START_TIMEOUT:-240}"
STOP_TIMEOUT="${ICH_RAY_STOP_TIMEOUT:-45}"
START_ATTEMPTS="${ICH_RAY_START_ATTEMPTS:-3}"
if [[ -n "${ICH_RAY_BIN:-}" ]]; then
  RAY_BIN="$ICH_RAY_BIN"
elif [[ -x "$REPO/.venv/bin/ray" ]]; then
  RAY_BIN="$REPO/.venv/bin/ray"
else
  RAY_BIN="$(command -v ray || true)"
fi
[[ -x "$RAY_BIN" ]] || { echo "local.sh: ray not found (set ICH_RAY_BIN or create .venv)" >&2; exit 1; }
BIN_DIR="$(cd "$(dirname "$RAY_BIN")" && pwd)"
PYTHON="$BIN_DIR/python"

# Every node and client of this cluster runs with token auth. The job drivers inherit the nodes' PATH,
# so `python` inside a job is the interpreter that sits next to `ray`.
export RAY_AUTH_MODE=token
export RAY_USAGE_STATS_ENABLED=0
export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0
export PATH="$BIN_DIR:$PATH"

die() { echo "local.sh: $*" >&2; exit 1; }

usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True when PID is alive and is one of our `ray start` leaders (guards against PID reuse).
is_our_node() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "ray start .*--block"
}

# PIDs of every process in the session led by PID (the node's raylet, GCS, agents, workers).
session_pids() {
  ps -eo pid=,sid= | awk -v sid="$1" '$2 == sid { print $1 }'
}

token_setup() {
  if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then
    TOKEN_NOTE="RAY_AUTH_TOKEN from the environment"
    return
  fi
  if [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
    [[ -s "$RAY_AUTH_TOKEN_PATH" ]] || die "RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is missing or empty"
  else
    export RAY_AUTH_TOKEN_PATH="$HOME/.ray/auth_token"
    [[ -s "$RAY_AUTH_TOKEN_PATH" ]] || env -u RAY_AUTH_TOKEN_PATH "$RAY_BIN" get-auth-token --generate >/dev/null
  fi
  TOKEN_NOTE="RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"
}

# Start one node as a session leader in the background; echo its PID.
start_node() {
  local name="$1"; shift
  setsid "$RAY_BIN" start --block --disable-usage-stats "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/$name.pid"
}

# Start a node and wait until `ray start` reports it up. On a loaded machine a raylet can miss Ray's
# fixed 30 s registration window and exit; such a node is started again (ICH_RAY_START_ATTEMPTS).
start_and_wait() {
  local name="$1"; shift
  local attempt pid deadline
  for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
    start_node "$name" "$@"
    pid="$(cat "$STATE_DIR/$name.pid")"
    deadline=$((SECONDS + START_TIMEOUT))
    until grep -q "Ray runtime started" "$STATE_DIR/logs/$name.log" 2>/dev/null; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "local.sh: $name exited during startup (attempt $attempt/$START_ATTEMPTS):" >&2
        grep -E "Error|Exception|timed out" "$STATE_DIR/logs/$name.log" | tail -n 3 >&2
        session_pids "$pid" | xargs -r kill -KILL 2>/dev/null || true
        cp "$STATE_DIR/logs/$name.log" "$STATE_DIR/logs/$name.failed-$attempt.log"
        continue 2
      fi
      ((SECONDS < deadline)) || die "$name not up after ${START_TIMEOUT}s (log: $STATE_DIR/logs/$name.log)"
      sleep 1
    done
    return 0
  done
  die "$name failed to start $START_ATTEMPTS times (logs: $STATE_DIR/logs/$name.*)"
}

alive_nodes() {
  "$RAY_BIN" list nodes --address "http://127.0.0.1:$DASHBOARD_PORT" --filter "state=ALIVE" \
    --format json 2>/dev/null | "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

cmd_up() {
  local workers=1 cpus=2 head_cpus="" store=$((500 * 1024 * 1024))
  while (($#)); do
    case "$1" in
      --workers) workers="$2"; shift 2 ;;
      --cpus-per-node) cpus="$2"; shift 2 ;;
      --head-cpus) head_cpus="$2"; shift 2 ;;
      --object-store-memory) store="$2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option for up: $1" ;;
    esac
  done
  head_cpus="${head_cpus:-$cpus}"
  if [[ -f "$STATE_DIR/head.pid" ]] && is_our_node "$(cat "$STATE_DIR/head.pid")"; then
    die "a cluster is already up (state: $STATE_DIR); run 'cluster/local.sh down' first"
  fi
  mkdir -p "$STATE_DIR/logs"
  rm -f "$STATE_DIR"/*.pid "$STATE_DIR/cluster.env"
  token_setup

  local common=(--node-ip-address 127.0.0.1 --num-gpus 0 --object-store-memory "$store"
                --temp-dir "$STATE_DIR/ray" --min-worker-port 0 --max-worker-port 0)
  # A failed `up` leaves nothing running behind it.
  trap 'echo "local.sh: up failed; stopping what it started" >&2; cmd_down >/dev/null' EXIT
  start_and_wait head --head --port "$GCS_PORT" --num-cpus "$head_cpus" "${common[@]}" \
    --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
    --ray-client-server-port "$CLIENT_PORT" --dashboard-agent-listen-port "$(free_port)"
  local i
  for ((i = 1; i <= workers; i++)); do
    # One at a time: parallel raylets on a 2-core box miss the registration window far more often.
    start_and_wait "worker-$i" --address "127.0.0.1:$GCS_PORT" --num-cpus "$cpus" "${common[@]}" \
      --dashboard-agent-listen-port "$(free_port)"
  done

  local deadline=$((SECONDS + START_TIMEOUT)) n=0
  until n="$(alive_nodes)" && ((n == workers + 1)); do
    ((SECONDS < deadline)) || die "expected $((workers + 1)) alive nodes, found ${n:-none}"
    sleep 2
  done
  write_env "$workers"
  trap - EXIT
  echo "Ray cluster up: $((workers + 1)) nodes (head + $workers workers), auth: token ($TOKEN_NOTE)"
  echo "  dashboard / jobs: http://127.0.0.1:$DASHBOARD_PORT"
  echo "  GCS address:      127.0.0.1:$GCS_PORT"
  echo "  Ray Client:       ray://127.0.0.1:$CLIENT_PORT"
  echo "  clients:          eval \"\$(cluster/local.sh env)\"   (state: $STATE_DIR)"
}

write_env() {
  {
    echo "# written by cluster/local.sh up; source it to talk to the cluster"
    echo "export RAY_AUTH_MODE=token"
    [[ -n "${RAY_AUTH_TOKEN_PATH:-}" && -z "${RAY_AUTH_TOKEN:-}" ]] \
      && echo "export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"
    echo "export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT"
    echo "export ICH_RAY_GCS_ADDRESS=127.0.0.1:$GCS_PORT"
    echo "export ICH_RAY_CLIENT_ADDRESS=ray://127.0.0.1:$CLIENT_PORT"
    echo "export ICH_RAY_WORKERS=$1"
  } >"$STATE_DIR/cluster.env"
}

node_names() {
  local f
  for f in "$STATE_DIR"/worker-*.pid "$STATE_DIR"/head.pid; do
    [[ -f "$f" ]] && basename "$f" .pid
  done
  return 0
}

cmd_status() {
  [[ -f "$STATE_DIR/head.pid" ]] || { echo "no cluster recorded in $STATE_DIR"; return 1; }
  local name pid down=0
  for name in $(node_names); do
    pid="$(cat "$STATE_DIR/$name.pid")"
    if is_our_node "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: NOT running"; down=1; fi
  done
  if [[ -f "$STATE_DIR/cluster.env" ]]; then
    grep '^export' "$STATE_DIR/cluster.env" | sed 's/^export /  /'
    echo "  alive nodes: $(alive_nodes || echo '?')"
  fi
  return "$down"
}

stop_nodes() {
  local name pid pids=() deadline
  for name in "$@"; do
    pid="$(cat "$STATE_DIR/$name.pid")"
    pids+=("$pid")
    # Only the leader gets SIGTERM: it drains the node, then stops its own children in order.
    is_our_node "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
  done
  for pid in "${pids[@]}"; do
    # Whatever is left in the node's session (a stuck drain, orphaned workers) is killed outright.
    session_pids "$pid" | xargs -r kill -KILL 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$STATE_DIR/$name.pid"; done
}

cmd_down() {
  [[ -d "$STATE_DIR" ]] || { echo "no cluster recorded in $STATE_DIR"; return 0; }
  local workers=()
  mapfile -t workers < <(node_names | grep '^worker-' || true)
  ((${#workers[@]})) && stop_nodes "${workers[@]}"
  [[ -f "$STATE_DIR/head.pid" ]] && stop_nodes head
  rm -f "$STATE_DIR/cluster.env"
  echo "Ray cluster down (logs kept in $STATE_DIR/logs)"
}

cmd_env() {
  [[ -f "$STATE_DIR/cluster.env" ]] || die "no cluster up (state: $STATE_DIR)"
  cat "$STATE_DIR/cluster.env"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
