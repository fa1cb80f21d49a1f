#!/usr/bin/env bash
# The whole ich-ray pipeline on synthetic data, locally (embedded Ray, MLflow in a local SQLite file).
# Usage: bash pipelines/demo.sh [DATA_ROOT]   (`make demo` runs it with demo-data/)
set -euo pipefail
ROOT=${1:-demo-data}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
TRACKING="sqlite:///$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)/mlflow.db"
# Each step prints how long the one before it took, and the end prints the total (bash's SECONDS).
STEP_NAME="" STEP_STARTED=$SECONDS
step_took() {
  if [ -n "$STEP_NAME" ]; then printf '(step %s took %d s)\n' "${STEP_NAME%% *}" $((SECONDS - STEP_STARTED)); fi
}
step() { step_took; STEP_NAME=$*; STEP_STARTED=$SECONDS; printf '\n==> %s\n' "$*"; }

step "1/9 synthetic head-CT studies (a training set + held-back studies with their labels, for prediction)"
ich-ray synth --out "$ROOT/synth" --patients 24 --size 128 --seed 7 --preview
ich-ray synth --out "$ROOT/new-studies" --patients 6 --size 128 --seed 99 --no-malformed

step "2/9 metadata: DICOM headers + pixel stats -> $ROOT/metadata/ (Ray Data)"
ich-ray metadata --input "$ROOT/synth/dicom" --out "$ROOT" --labels "$ROOT/synth/labels.csv"

step "3/9 clean: windows, blank-slice filter, head crop, resize -> $ROOT/images/"
ich-ray clean --data "$ROOT" --size 128

step "4/9 explore: plots + report -> $ROOT/reports/index.html"
ich-ray explore --data "$ROOT" --tracking-uri "$TRACKING"

step "5/9 baseline: metadata-only random forest"
ich-ray baseline --data "$ROOT" --tracking-uri "$TRACKING"

step "6/9 train two architectures on the six labels with Ray Train (CPU; ResNet18 on 2 DDP workers, AlexNet on 1)"
# No ImageNet weights can be downloaded here, so the models start from random init (and, without pretrained
# weights, train with no frozen-body epoch). ResNet18 (version 1 of ich-ray-demo) is the triage model.
# AlexNet trains on one worker: its 57M parameters make each DDP step's gradient all-reduce (230 MB over
# loopback on 2 CPUs) cost more than the step itself.
ich-ray train --data "$ROOT" --arch resnet18 --task multilabel --epochs 8 --set 'sizes=[64,128]' --workers 2 \
  --set lr=0.003 --tracking-uri "$TRACKING" --run-name demo-resnet18-multilabel --register-as ich-ray-demo
ich-ray train --data "$ROOT" --arch alexnet --task multilabel --epochs 2 --set 'sizes=[64]' --workers 1 \
  --set lr=0.003 --tracking-uri "$TRACKING" --run-name demo-alexnet-multilabel --register-as ich-ray-demo

step "7/9 study model: a BiGRU over each series' ResNet18 slice embeddings (same held-out patients)"
ich-ray train-study --data "$ROOT" --slice-model models:/ich-ray-demo/1 --arch bigru --epochs 6 \
  --tracking-uri "$TRACKING" --run-name demo-study-bigru --register-as ich-ray-demo-study

step "8/9 compare the tracked runs (final epoch, 95% patient-bootstrap intervals)"
ich-ray compare --tracking-uri "$TRACKING" --out "$ROOT/comparison" --promote ich-ray-demo \
  --experiment ich-ray/multilabel --experiment ich-ray/baseline --experiment ich-ray/study

step "9/9 predict on the held-back studies: triage worklist, heat maps, and the score against their labels"
ich-ray predict --model models:/ich-ray-demo/1 --study-model models:/ich-ray-demo-study/latest \
  --tracking-uri "$TRACKING" --input "$ROOT/new-studies/dicom" --out "$ROOT/predictions" \
  --labels "$ROOT/new-studies/labels.csv"
python - "$ROOT/predictions" "$ROOT/new-studies/labels.csv" <<'PY'
import json, sys
import polars as pl
from ich_ray.data.labels import read_rsna_labels
out, labels = sys.argv[1], sys.argv[2]
metrics = json.load(open(f"{out}/metrics.json"))
print(f"held-back: {metrics['n_studies']} studies, {metrics['n_labelled']} slices; "
      f"slice auc_any {metrics['slice']['auc_any']:.3f}, study auc_any {metrics['study']['auc_any']:.3f}")
truth = (pl.read_parquet(f"{out}/predictions.parquet").join(read_rsna_labels(labels).frame, on="sop_instance_uid")
         .group_by("study_instance_uid").agg(pl.col("label_any").max().alias("has_bleed")))
worklist = pl.read_csv(f"{out}/worklist.csv").join(truth, on="study_instance_uid", how="left", maintain_order="left")
with pl.Config(tbl_rows=10, tbl_cols=8, tbl_width_chars=140, fmt_str_lengths=24):
    print("worklist, most urgent first (has_bleed from the labels):")
    print(worklist.select("study_instance_uid", "flagged", "max_any", "top_slice_index", "has_bleed"))
PY

step_took
cat <<TXT

Done in ${SECONDS} s. Look at:
  report        $ROOT/reports/index.html
  comparison    $ROOT/comparison/
  worklist      $ROOT/predictions/worklist.csv   (most urgent study first)
  heat maps     $ROOT/predictions/heatmaps/
  MLflow UI     .venv/bin/mlflow ui --backend-store-uri $TRACKING --host 127.0.0.1 --port 5000
                then open http://127.0.0.1:5000
TXT
