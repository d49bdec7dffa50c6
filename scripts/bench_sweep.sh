#!/usr/bin/env bash
# Wall time of the same 6-job sweep, one job after the other (Hydra's basic launcher) and two at a
# time (joblib, each job on cores/jobs = 1 torch thread). Run from the repository root.
#   bash scripts/bench_sweep.sh
set -euo pipefail
SWEEP=(-m task=qrsu task.difficulty=normal model=rnn,lstm,gru train.seed=1,2 train.epochs=15
       train.target_accuracy=null)
t0=$(date +%s.%N)
rnnexp "${SWEEP[@]}" hydra.sweep.dir=outputs/bench/sweep-sequential > /dev/null
t1=$(date +%s.%N)
rnnexp "${SWEEP[@]}" hydra/launcher=local_parallel hydra.launcher.n_jobs=2 hydra.sweep.dir=outputs/bench/sweep-joblib > /dev/null
t2=$(date +%s.%N)
python - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
seq, par = t1 - t0, t2 - t1
print(f"6-job sweep: sequential {seq:.1f} s, joblib n_jobs=2 {par:.1f} s, speed-up {seq / par:.2f}x")
PY
