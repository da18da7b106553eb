#!/usr/bin/env bash
# CPU driver: our full-data zero-shot eval (16 threads) beside the table rows
# (4 at a time, 4 threads each), after the forward benchmark has finished.
set -u
K=/root/keep; cd $K/repo
w() { n=0; while ! grep -q "$1" $K/i6/status.txt 2>/dev/null && [ $n -lt $2 ]; do sleep 5; n=$((n+5)); done; }
w forward-bench 240
THREADS=16 bash tools/oracle/zeroshot_optima_device.sh start
w prune.test 240
if grep -q 'prune.test rc=0' $K/i6/status.txt; then
  export PRUNE_FLAGS="--device cuda --forward-device cuda --threads 4" EVAL_FLAGS="--device cuda --threads 4"
else
  export PRUNE_FLAGS="--device cuda --threads 4" EVAL_FLAGS="--threads 4"
fi
echo "PRUNE_FLAGS=$PRUNE_FLAGS EVAL_FLAGS=$EVAL_FLAGS"
export ZEROSHOT_TASKS=piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu ZEROSHOT_LIMIT=${ZEROSHOT_LIMIT:-200} ZEROSHOT_MMLU_LIMIT=${ZEROSHOT_MMLU_LIMIT:-10}
mkdir -p $K/rows
i=0
for row in dense wanda50-none wanda50-optima wanda24-none wanda24-optima sgpt24-own sgpt24-optima thanos24-own thanos24-optima admm24-own sgpt50-own sgpt50-optima thanos50-own thanos50-optima admm50-own; do
  echo "$((i % 2)) $row"; i=$((i+1))
done | xargs -P 4 -L 1 sh -c 'CUDA_VISIBLE_DEVICES=$0 bash bench/smollm2/run.sh /root/keep/optima /root/keep/m.gguf /root/keep/data /root/keep/rows 32 32 $1 >> /root/keep/rows/$1.log 2>&1; echo "$1 rc=$? $(date +%T)" >> /root/keep/rows/status.txt'
touch $K/rows/done
