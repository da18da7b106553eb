#!/usr/bin/env bash
# Issue-6 GPU checks on GPU 0, in the background; results in /root/keep/i6.
set -u
K=/root/keep; O=$K/i6; B=$K/bin; R=$K/repo
export CUDA_VISIBLE_DEVICES=0 OPTIMA_REQUIRE_GPU=1
s=$(date +%s); t() { echo "$1 rc=$2 at $(( $(date +%s) - s )) s" >> $O/status.txt; }
$B/cudabench --forward-bench --out $O/forward.json > $O/forward.txt 2>&1; t forward-bench $?
(cd $R/stages/prune && $B/prune.test -test.run 'GPUForward|ForwardBackend|GramBackend' -test.bench ForwardGPUGemm -test.benchtime 3x -test.v) > $O/prune_test.txt 2>&1; t prune.test $?
(cd $R/kernels/cuda && $B/cuda.test -test.v) > $O/cuda_test.txt 2>&1; t cuda.test $?
(cd $R/stages/solve && $B/solve.test -test.run 'CUDA|Device' -test.v) > $O/solve_test.txt 2>&1; t solve.test $?
$B/cudabench --fallback-bench --out $O/fallback.json > $O/fallback.txt 2>&1; t fallback-bench $?
touch $O/done
