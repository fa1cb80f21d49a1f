#!/usr/bin/env bash
# Submit the incremental re-preprocessing job (pipelines/reprocess.py) with a dated submission id.
#
#   pipelines/submit_reprocess.sh --input /data/dicom --data /data/root [--labels labels.csv] [ich-ray options]
#
# The id is reprocess-YYYYMMDD-HH (UTC; ICH_RAY_REPROCESS_ID_FORMAT changes the date part): Ray refuses a
# second job with an id it already knows, so a schedule that fires twice in the same hour (a retried cron,
# a timer catching up after downtime) can never submit the same run twice. Runs that still overlap (a slow
# run when the next hour starts) are kept apart by the stage's lock on ROOT/.reprocess.lock: the later run
# exits with code 3 and does nothing.
#
# Environment: RAY_ADDRESS (the job server, e.g. http://127.0.0.1:8265; required), RAY_AUTH_MODE=token and
# the token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), ICH_RAY_REPO (default: this checkout),
# RAY_BIN (default: .venv/bin/ray, else `ray`), ICH_RAY_SUBMIT_WAIT=1 to wait for the job and return its
# status (default: submit and return). --dry-run prints the command instead of running it.
set -euo pipefail

repo="${ICH_RAY_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
id="reprocess-$(date -u +"${ICH_RAY_REPROCESS_ID_FORMAT:-%Y%m%d-%H}")"
if [[ -n "${RAY_BIN:-}" ]]; then ray_bin="$RAY_BIN"
elif [[ -x "$repo/.venv/bin/ray" ]]; then ray_bin="$repo/.venv/bin/ray"
else ray_bin="ray"; fi
dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
[[ -n "${RAY_ADDRESS:-}" ]] || { echo "submit_reprocess.sh: set RAY_ADDRESS (e.g. http://127.0.0.1:8265)" >&2; exit 2; }
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"

wait_flag=(--no-wait)
[[ "${ICH_RAY_SUBMIT_WAIT:-0}" == 1 ]] && wait_flag=()
cmd=("$ray_bin" job submit --address "$RAY_ADDRESS" --submission-id "$id" "${wait_flag[@]}"
     --working-dir "$repo" --runtime-env "$repo/pipelines/runtime_env.yaml"
     -- python pipelines/reprocess.py "$@")
if ((dry_run)); then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
cd "$repo"
exec "${cmd[@]}"
