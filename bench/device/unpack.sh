#!/usr/bin/env bash
# Session-5 device orchestration, step 1: unpack the kit carried in .carry/k1
# into /root/keep, keep a copy of the repository there (background jobs outlive
# the command's working copy), install the harness wheels, start the issue-6 GPU
# checks in the background on GPU 0.
set -u
K=/root/keep; mkdir -p $K/bin $K/i6
for f in cudabench cuda.test solve.test prune.test optima; do xz -dc .carry/k1/$f.xz > $K/bin/$f; done
chmod +x $K/bin/*; cp $K/bin/optima $K/optima
tar -C $K -xJf .carry/k1/data5.tar.xz
rm -rf $K/repo && mkdir -p $K/repo && tar --exclude=./.carry -cf - . | tar -C $K/repo -xf -
mkdir -p $K/wheels && cp .carry/i5h/*.whl $K/wheels/
nproc; nvidia-smi --query-gpu=index,name,memory.used --format=csv,noheader
setsid nohup bash $K/repo/bench/device/i6.sh </dev/null >$K/i6/driver.log 2>&1 &
echo started i6
