#!/usr/bin/env bash
# Start an MLflow tracking server for ich-ray: SQL backend store + proxied artifact store.
#
#   mlflow/server.sh                         # 127.0.0.1:5000, SQLite + artifacts under ./mlflow-server/
#   mlflow/server.sh --home /srv/mlflow --port 5001 --workers 1
#   mlflow/server.sh --host 0.0.0.0 \
#       --backend-store-uri postgresql+psycopg2://mlflow:PASSWORD@db:5432/mlflow \
#       --artifacts-destination s3://my-bucket/mlflow -- --allowed-hosts mlflow.internal:5000
#
# Options (defaults in brackets; each also read from the environment variable shown):
#   --home DIR                   folder for the default SQLite store and artifacts [$MLFLOW_HOME or ./mlflow-server]
#   --backend-store-uri URI      runs, params, metrics, registry [$MLFLOW_BACKEND_STORE_URI or sqlite:///HOME/mlflow.db]
#   --artifacts-destination URI  where the server stores artifacts [$MLFLOW_ARTIFACTS_DESTINATION or HOME/artifacts]
#   --host ADDR                  bind address [$MLFLOW_HOST or 127.0.0.1]; 0.0.0.0 only behind --allowed-hosts
#   --port N                     [$MLFLOW_PORT or 5000]
#   --workers N                  request workers [$MLFLOW_WORKERS or 1]; 1 is plenty for a small team box
#   -- ARGS...                   passed to `mlflow server` unchanged (e.g. --allowed-hosts, --static-prefix)
#
# Artifacts are always served through the server (--serve-artifacts), so Ray workers need only HTTP access
# to the server, never cloud credentials. MLFLOW_SERVER_ENABLE_JOB_EXECUTION defaults to false: MLflow 3's
# background job runner is not needed for tracking and costs memory on small machines.
# The script `exec`s mlflow, so its PID is the server's PID (stop it with `kill PID`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="${MLFLOW_HOME:-$PWD/mlflow-server}"
backend="${MLFLOW_BACKEND_STORE_URI:-}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-1}"
extra=()

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --home) home="$2"; shift 2 ;;
        --backend-store-uri) backend="$2"; shift 2 ;;
        --artifacts-destination) artifacts="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "server.sh: unknown option $1 (see --help; pass mlflow flags after --)" >&2; exit 2 ;;
    esac
done

mkdir -p "$home"
home="$(cd "$home" && pwd)"
backend="${backend:-sqlite:///$home/mlflow.db}"
artifacts="${artifacts:-$home/artifacts}"
if [[ "$artifacts" != *://* ]]; then
    mkdir -p "$artifacts"
fi

if [[ -n "${MLFLOW_BIN:-}" ]]; then
    mlflow_bin="$MLFLOW_BIN"
elif [[ -x "$repo/.venv/bin/mlflow" ]]; then
    mlflow_bin="$repo/.venv/bin/mlflow"
else
    mlflow_bin="mlflow"
fi

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
echo "mlflow server: http://$host:$port  store=$backend  artifacts=$artifacts  workers=$workers" >&2
exec "$mlflow_bin" server \
    --backend-store-uri "$backend" \
    --artifacts-destination "$artifacts" \
    --serve-artifacts \
    --host "$host" \
    --port "$port" \
    --workers "$workers" \
    "${extra[@]}"
