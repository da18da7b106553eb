#!/bin/sh
# Runs the floor and the anchors of the OPTIMA row re-fit on one GPU machine in
# one command (bench/cuda/README.md, "Anchors"): cudabench on block 0 of the
# 8B-shaped model dumping its layers, then anchors.py torch (PyTorch batched
# PCG, SparseGPT, float64 exact optima), anchors.py mpax (MPAX raPDHG as OPTIMA
# calls it, tolerances 1e-2 and 1e-3) and render.py. Every phase has a
# deadline inside BUDGET seconds and its JSON is rewritten after each layer,
# so a slow MPAX run still leaves the rest.
#
# Build (dev machine, repository root; DIR is ignored by git, e.g. .carry/i6anchor):
#   mkdir -p DIR && CGO_ENABLED=0 go build -ldflags="-s -w" -o DIR/cudabench ./bench/cuda && gzip -f DIR/cudabench
#   python3 -m pip download --no-deps -d DIR mpax==0.2.4      # pure Python; chex, jax, numpy are on the device
# Run (GPU machine, repository root; OUT a results folder, at most 8 files come back):
#   sh bench/cuda/anchors.sh DIR OUT [BUDGET_SECONDS=560] [CUDABENCH_FLAGS...]
set -u
DIR=$1 OUT=$2 BUDGET=${3:-560}
shift 2; [ $# -gt 0 ] && shift
T0=$(date +%s)
DEADLINE=$((T0 + BUDGET))
DATA=${ANCHORS_DATA:-/tmp/anchors_data}
PY=${PYTHON:-python3}
RG=${ANCHORS_REQUIRE_GPU---require-gpu}  # set ANCHORS_REQUIRE_GPU= to test on a CPU
left() { echo $((DEADLINE - $(date +%s))); }
upto() { t=$(( $(left) - $1 )); [ $t -lt 10 ] && t=10; echo $t; }  # seconds until $1 s before the deadline, at least 10
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

[ -e "$DIR/cudabench.gz" ] && gunzip -f "$DIR/cudabench.gz"
chmod +x "$DIR/cudabench" || exit 1
if ls "$DIR"/mpax-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/anchors_site "$DIR"/mpax-*.whl || exit 1
  export PYTHONPATH=/tmp/anchors_site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
  $PY -c 'import torch, jax, mpax, importlib.metadata as m; print("torch", torch.__version__, "jax", jax.__version__, jax.default_backend(), "mpax", m.version("mpax"))'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. stages/solve on kernels/cuda, block 0, dumped (the floor is timed here too).
rm -rf "$DATA"
"$DIR/cudabench" --layers 1 --gap-blocks 1 --gap-rows 4 --dump "$DATA" --out "$OUT/bench_1.json" "$@" > "$OUT/bench_1.txt" 2>&1
echo "cudabench rc=$? ($(( $(date +%s) - T0 ))s)"; tail -12 "$OUT/bench_1.txt"
[ -e "$DATA/manifest.json" ] || exit 1

# 2. PyTorch PCG, SparseGPT, exact optima: leave at least 240 s for MPAX.
timeout $(upto 240) $PY bench/cuda/anchors.py torch --data "$DATA" --out "$OUT/anchors_torch.json" $RG \
  --deadline $((DEADLINE - 300)) > "$OUT/anchors_torch.txt" 2>&1
echo "anchors torch rc=$? ($(( $(date +%s) - T0 ))s)"; tail -12 "$OUT/anchors_torch.txt"

# 3. MPAX raPDHG (a run in flight at the deadline is cut by timeout; its
#    finished batches are in the JSON).
timeout $(upto 15) $PY bench/cuda/anchors.py mpax --data "$DATA" --out "$OUT/anchors_mpax.json" $RG \
  --deadline $((DEADLINE - 60)) > "$OUT/anchors_mpax.txt" 2>&1
echo "anchors mpax rc=$? ($(( $(date +%s) - T0 ))s)"; tail -20 "$OUT/anchors_mpax.txt"

# 4. The README tables.
$PY bench/cuda/render.py --torch "$OUT/anchors_torch.json" --mpax "$OUT/anchors_mpax.json" > "$OUT/anchors.md"
cat "$OUT/anchors.md"
