#!/usr/bin/env bash
# Step 3: assemble the GGUF (parts in /root/keep/gA and .carry/m2/gB), then
# start the harness on GPU 1 and the CPU driver (our full zero-shot eval, the rows),
# both in the background.
set -u
K=/root/keep
tar --exclude=./.carry -cf - . | tar -C $K/repo -xf -
cat $K/gA .carry/m2/gB | xz -dc > $K/m.gguf && rm $K/gA
sha256sum $K/m.gguf | cut -c1-16
cat $K/i6/status.txt 2>/dev/null
mkdir -p $K/h
CUDA_VISIBLE_DEVICES=1 WHEELS=$K/wheels OUTDIR=$K/h SITE=$K/site setsid nohup bash $K/repo/tools/oracle/zeroshot_harness_device.sh </dev/null >$K/h/driver.log 2>&1 &
setsid nohup bash $K/repo/bench/device/cpu.sh </dev/null >$K/cpu.log 2>&1 &
echo started harness and cpu driver
