#!/usr/bin/env bash
# Paired zero-shot differences, collect: waits up to $1 s for the rows that
# paired.sh started, then returns their results (not the models) in $OUT/paired.tgz.
K=/root/keep; n=0
while [ $n -lt ${1:-0} ] && [ ! -e $K/rows/done ]; do sleep 5; n=$((n+5)); done
echo "waited $n s"; cat $K/rows/status.txt 2>/dev/null; tail -qn1 $K/rows/*.log 2>/dev/null | cut -c1-160
tar -C $K/rows -czf $OUT/paired.tgz $(cd $K/rows && ls | grep -v -e '\.model$' -e '\.tmp')
uptime; nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
