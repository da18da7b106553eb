#!/usr/bin/env bash
# Started by paired.sh: runs the 13 rows at once (2 threads each, GPUs 0 and 1
# alternately), one bench/smollm2/run.sh per row, and touches rows/done.
set -u
K=/root/keep
rows="dense wanda50-none wanda50-optima wanda24-none wanda24-optima sgpt50-own sgpt50-optima sgpt24-own sgpt24-optima thanos50-own thanos50-optima thanos24-own thanos24-optima"
i=0
for row in $rows; do
  ( export CUDA_VISIBLE_DEVICES=$((i % 2))
    PRUNE_FLAGS="--device cuda --forward-device cuda --threads 2" EVAL_FLAGS="--device cuda --threads 2" \
    ZEROSHOT_TASKS=piqa,arc_easy,arc_challenge,winogrande,openbookqa ZEROSHOT_LIMIT=0 ZEROSHOT_SAMPLES=1 \
      bash $K/repo/bench/smollm2/run.sh $K/bin/optima $K/m.gguf $K/data $K/rows 32 32 $row >$K/rows/$row.log 2>&1
    echo "$row rc=$?" >> $K/rows/status.txt ) </dev/null >/dev/null 2>&1 &
  i=$((i + 1))
done
wait
touch $K/rows/done
