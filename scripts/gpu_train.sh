#!/usr/bin/env bash
# One short bf16 training run on a GPU (issue 5): the dense-scifact recipe with bf16 autocast,
# its throughput and its SciFact nDCG@10, written to benchmarks/results/gpu_training.json.
# Never run by the tests. Usage (on a machine with a CUDA device and the repo's .venv):
#   bash scripts/gpu_train.sh            # STEPS=420 OUT=runs/dense-scifact-gpu by default
# The runner puts the model on CUDA when one is visible; hard negatives already mined by a CPU
# run (runs/dense-scifact/data) are reused, else they are mined first (on the GPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-420}
OUT=${OUT:-runs/dense-scifact-gpu}
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible: this script is for a GPU machine')"
mkdir -p "$OUT"
if [ -d runs/dense-scifact/data ] && [ ! -d "$OUT/data" ]; then cp -r runs/dense-scifact/data "$OUT/"; fi
t0=$(date +%s)
.venv/bin/granite-train -v dense-scifact --out "$OUT" --no-resume -o bf16=true -o max_steps="$STEPS"
t1=$(date +%s)
"$PY" - "$OUT" "$STEPS" "$((t1 - t0))" <<'EOF'
import json, statistics, sys
from pathlib import Path

import torch

from benchmarks.common import machine, write_results

out, steps, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if x.strip()]
summary = json.loads((out / "train_summary.json").read_text())
result = {
    "machine": machine(),
    "gpu": torch.cuda.get_device_name(0),
    "recipe": "dense-scifact -o bf16=true",
    "steps": steps,
    "examples_per_s_median": statistics.median(r["examples_per_s"] for r in log),
    "wall_seconds_with_mining_and_eval": seconds,
    "scifact_test": summary.get("metrics", {}),
}
print(json.dumps(result, indent=2))
print("wrote", write_results("gpu_training", result))
EOF
