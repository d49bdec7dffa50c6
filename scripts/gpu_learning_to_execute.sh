#!/usr/bin/env bash
# Issue 21's GPU check: Learning to Execute's 9-digit addition with the combined curriculum, one seed,
# for 8 minutes on one CUDA GPU, next to the paper's 99% (per character, teacher-forced:
# test/forced_accuracy; rnnexp also gives greedy exact match). About 9 minutes:
#   bash scripts/gpu_learning_to_execute.sh OUT_DIR
set -uo pipefail
out=${1:?OUT_DIR}
mkdir -p "$out"
python3 -m rnnexp task=execute task.operations=addition task.length=9 model=lstm model.hidden_size=400 \
  model.num_layers=2 train.device=cuda train.batch_size=100 train.curriculum="[1,2,3,4,5,6,7,8]" \
  train.curriculum_strategy=combined train.time_limit_minutes=8 train.epochs=100000 train.target_accuracy=null \
  train.insight_every=0 train.progress=lines "hydra.run.dir=$out/run" > "$out/run.log" 2>&1
python3 - "$out/run/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
test = r.get("test", {})
print(r["status"], "epochs", r.get("epochs_run"), "test/forced_accuracy", test.get("test/forced_accuracy"),
      "test/exact_match", test.get("test/exact_match"), "(the paper: 99% per character, teacher-forced)")
PY
