#!/usr/bin/env bash
# Waits up to $1 s for everything (i6, harness, our eval, rows), then copies results to $OUT.
K=/root/keep; n=0
while [ $n -lt ${1:-0} ] && ! { [ -e $K/i6/done ] && [ -e $K/rows/done ] && [ -e $K/zs/rc ] && grep -q 'zeroshot_harness_device.sh: [0-9]' $K/h/zeroshot_harness.log 2>/dev/null; }; do sleep 5; n=$((n+5)); done
echo "waited $n s"; cat $K/i6/status.txt; tail -2 $K/h/driver.log; cat $K/zs/rc 2>/dev/null; tail -2 $K/zs/optima_zeroshot_full.log; cat $K/rows/status.txt 2>/dev/null; cat $K/cpu.log
tar -C $K -czf $OUT/i6.tgz i6
tar -C $K -czf $OUT/h.tgz h
tar -C $K -czf $OUT/zs.tgz zs
tar -C $K/rows -czf $OUT/rows.tgz $(cd $K/rows && ls | grep -v -e '\.model' -e '\.tmp$')
uptime; nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
