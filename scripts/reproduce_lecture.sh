#!/usr/bin/env bash
# The lecture's experiments on this machine, with the numbers in README.md. Run from the repository
# root after installing rnnexp with its sweeps extra. Results land in outputs/bench/.
#   bash scripts/reproduce_lecture.sh [qrsu|hard|long_lags|echo|charlm ...]   (default: all; charlm ~20 min,
#   long_lags ~40 min: the cell x initialisation x curriculum table of README's "Long time lags")
set -euo pipefail
PARALLEL=(hydra/launcher=local_parallel hydra.launcher.n_jobs=2)
# The results go to fixed directories: a rerun moves the earlier one aside (<dir>.replaced-<time>).
AGAIN=train.overwrite=true
SHAKESPEARE=${SHAKESPEARE:-tinyshakespeare}   # a named corpus (downloaded once) or a path
steps=("${@:-qrsu hard long_lags echo charlm}")
for step in ${steps[@]}; do
  case $step in
    qrsu) rnnexp experiment=lecture_qrsu "${PARALLEL[@]}" hydra.sweep.dir=outputs/bench/lecture_qrsu $AGAIN ;;
    hard) rnnexp -m task=qrsu task.difficulty=hard model=rnn,lstm train.epochs=300 train.seed=1,2 "${PARALLEL[@]}" \
            hydra.sweep.dir=outputs/bench/qrsu_hard $AGAIN ;;
    long_lags) python scripts/bench_long_lags.py qrsu --difficulties hard --jobs 2 --out outputs/bench/long_lags_hard ;;
    echo) rnnexp experiment=lecture_echo "${PARALLEL[@]}" hydra.sweep.dir=outputs/bench/lecture_echo $AGAIN ;;
    charlm)
      for cell in lstm gru; do
        rnnexp experiment=lecture_charlm model=$cell task.corpus="$SHAKESPEARE" train.threads=2 \
          hydra.run.dir=outputs/bench/charlm_$cell train.progress=lines $AGAIN
      done ;;
    *) echo "unknown step $step (qrsu, hard, long_lags, echo, charlm)"; exit 2 ;;
  esac
done
