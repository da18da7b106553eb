#!/usr/bin/env bash
# Paired zero-shot differences (issue 5), device step 3 of 3: unpack the optima
# binary and the data (.carry/k7), join the GGUF (/root/keep/gA from step 1,
# .carry/m2/gB), then start in the background the 13 rows of bench/smollm2
# (dense and the own|none / optima pairs of Wanda, SparseGPT and Thanos at 50%
# and 2:4), all at once, 2 threads each, GPUs 0 and 1 alternately: prune on the
# GPU, WikiText-2 over 32 windows, and the five non-MMLU tasks on all their
# documents with per-document samples (ZEROSHOT_SAMPLES=1).
# bench/device/collect_paired.sh waits for them and returns the results.
set -u
K=/root/keep; mkdir -p $K/bin $K/rows
xz -dc .carry/k7/optima.xz > $K/bin/optima && chmod +x $K/bin/optima
tar -C $K -xJf .carry/k7/data.tar.xz
rm -rf $K/repo && mkdir -p $K/repo && tar --exclude=./.carry -cf - . | tar -C $K/repo -xf -
cat $K/gA .carry/m2/gB | xz -dc > $K/m.gguf && rm $K/gA
sha256sum $K/m.gguf | cut -c1-16
nproc; nvidia-smi --query-gpu=index,name,memory.used --format=csv,noheader
setsid nohup bash $K/repo/bench/device/paired_rows.sh </dev/null >$K/rows/driver.log 2>&1 &
echo started the rows
