#!/usr/bin/env bash
# The GPU checks and timings of BENCHMARKS.md, on a machine with one CUDA GPU (about 8 minutes):
#   bash scripts/gpu_checks.sh OUT_DIR PATH/TO/tinyshakespeare.txt
# 1. the CUDA-graph tests (tests/test_speed.py: a graphed step trains like the eager one);
# 2. scripts/gpu_check.py: per-step time eager vs CUDA graph, and CPU vs GPU per epoch (auto);
# 3. experiment=charlm_gpu for its 5 minutes, beside two variants (no DropConnect; more dropout) on
#    the same GPU at the same time (each has a third of the GPU: a conservative measurement).
set -uo pipefail
out=${1:?OUT_DIR}; corpus=${2:?corpus}
runs=${RUNS:-/tmp/rnnexp_gpu_runs}  # checkpoints of a 17M-parameter model: kept out of OUT_DIR
mkdir -p "$out" "$runs"
python3 -m pytest -q -p no:cacheprovider tests/test_speed.py -k "cuda or cpu_step" 2>&1 | tail -5 | tee "$out/pytest.txt"
python3 scripts/gpu_check.py > "$out/gpu_check.json" 2> "$out/gpu_check.err"; tail -3 "$out/gpu_check.err"
for variant in preset no_weight_drop stronger; do
  extra=()
  [ "$variant" = no_weight_drop ] && extra=(model.weight_drop=0 model.dropout=0.5)
  [ "$variant" = stronger ] && extra=(model.weight_drop=0.5 model.dropout=0.5 model.input_dropout=0.2)
  python3 -m rnnexp experiment=charlm_gpu "task.corpus=$corpus" train.progress=lines "${extra[@]}" \
    "hydra.run.dir=$runs/charlm_gpu_$variant" > "$out/charlm_gpu_$variant.log" 2>&1 &
done
wait
for variant in preset no_weight_drop stronger; do
  cp "$runs/charlm_gpu_$variant/results.json" "$out/charlm_gpu_$variant.json"
  python3 - "$out/charlm_gpu_$variant.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = r["history"]
best = min(h, key=lambda x: x["val/loss"])
first = next((x["seconds"] for x in h if x["val/loss"] <= 1.40), None)
print(sys.argv[1], r["status"], "best val", round(best["val/loss"], 4), "at", best["seconds"], "s; <= 1.40 at", first,
      "s; test", round(r.get("test", {}).get("test/loss", float("nan")), 4), "epochs", len(h))
PY
done
