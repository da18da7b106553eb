#!/bin/sh
# Runs the CUDA acceptance tests and the 8B-shaped solve benchmark on a GPU
# machine (the device machine has no Go: build here, carry the binaries).
#
# Build (on the dev machine, from the repository root):
#   CGO_ENABLED=0 go build -ldflags="-s -w" -o DIR/cudabench ./bench/cuda
#   CGO_ENABLED=0 go test -c -o DIR/cuda.test ./kernels/cuda
#   CGO_ENABLED=0 go test -c -o DIR/solve.test ./stages/solve
#   gzip DIR/*; cp bench/cuda/run.sh DIR/
# Run (on the GPU machine, from the repository root, OUT a results folder):
#   sh DIR/run.sh DIR OUT LAYERS
# LAYERS "bench" skips the tests; "fallback" runs only the fallback/Gram
# measurement (cudabench --fallback-bench), which the test run also makes.
set -u
DIR=$1 OUT=$2 LAYERS=${3:-32}
ROOT=$(pwd)
cd "$DIR" && for f in *.gz; do [ -e "$f" ] && gunzip -f "$f"; done; chmod +x cudabench cuda.test solve.test; cd "$ROOT"
{ nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
  ls /usr/local/cuda/lib64 | grep -E '^lib(cublas|cusolver|nvrtc)\.so' ; } > "$OUT/env.txt" 2>&1
if [ "$LAYERS" = fallback ]; then
  "$DIR/cudabench" --fallback-bench --out "$OUT/fallback.json" 2>&1 | tee "$OUT/fallback.txt" | tail -8
  exit 0
fi
if [ "$LAYERS" != bench ]; then
  OPTIMA_REQUIRE_GPU=1 "$DIR/cuda.test" -test.v > "$OUT/cuda_test.txt" 2>&1; echo "cuda.test rc=$?"
  grep -E '^(--- FAIL|FAIL|ok|PASS)|cuda_test.go|TFLOP' "$OUT/cuda_test.txt" | head -40
  (cd stages/solve && OPTIMA_REQUIRE_GPU=1 "$ROOT/$DIR/solve.test" -test.run 'CUDA|Device' -test.v) > "$OUT/solve_test.txt" 2>&1; echo "solve.test rc=$?"
  grep -E '^(--- FAIL|FAIL|ok|PASS)|device_test.go|batched_test.go' "$OUT/solve_test.txt" | head -40
  "$DIR/cudabench" --fallback-bench --out "$OUT/fallback.json" 2>&1 | tee "$OUT/fallback.txt" | tail -8
  LAYERS=1
fi
"$DIR/cudabench" --layers "$LAYERS" --out "$OUT/bench_$LAYERS.json" 2>&1 | tee "$OUT/bench_$LAYERS.txt" | tail -25
