#!/bin/sh
# Runs the kernels/cpu benchmarks: FMA peak and micro-kernels (default
# benchtime), then the GEMM, Gram, DGEMM and Cholesky shapes for our backend
# (default and each micro-kernel) against gonum in the same run, summarized
# with benchstat (go install golang.org/x/perf/cmd/benchstat@latest).
# Usage, from the repository root:
#   sh bench/gemm/run.sh > bench/gemm/results.txt
set -e
out=$(mktemp)
uptime >&2
go test -run '^$' -bench 'Peak|MicroKernel' -count 3 ./kernels/cpu/ | tee "$out" >&2
go test -run '^$' -bench 'Sgemm|AccumulateGram|Dgemm|Cholesky' -benchtime 2x -count 3 ./kernels/cpu/ | tee -a "$out" >&2
uptime >&2
benchstat -col /impl "$out"
