#!/bin/sh
# optima prune --device cuda on a tiny model, against the same run on CPU.
# Usage (device machine, repository root): OUT=$OUT sh bench/cuda/tiny_prune.sh DIR
# DIR holds optima.gz (CGO_ENABLED=0 build of ./cmd/optima), tiny/ (an
# internal/tinymodel HF directory: hidden 256, intermediate 512, 4 layers,
# 4 heads, 2 KV heads) and calib.jsonl (the first 200 lines of
# ../shared/data/c4/c4_sample.jsonl).
set -u
D=${1:-.carry/gpu}
gunzip -f $D/optima.gz; chmod +x $D/optima
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > $OUT/env.txt 2>&1
for m in wanda sparsegpt; do
  for dev in cuda cpu; do
    /usr/bin/time -f "$m $dev %e s" $D/optima prune --model $D/tiny --calib $D/calib.jsonl --nsamples 8 --seqlen 128 \
      --method $m --sparsity 0.5 --update optima --device $dev --out $OUT/$m-$dev --no-progress > $OUT/$m-$dev.log 2>&1
    echo "$m $dev rc=$?"; tail -3 $OUT/$m-$dev.log
  done
done
python3 - <<'PY'
import json, os, struct, sys
import numpy as np
out = os.environ["OUT"]
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; hdr = json.loads(b[8:8+n]); base = 8 + n
    return {k: np.frombuffer(b[base+v["data_offsets"][0]:base+v["data_offsets"][1]], dtype=np.float32).reshape(v["shape"])
            for k, v in hdr.items() if k != "__metadata__" and v["dtype"] == "F32"}
for m in ("wanda", "sparsegpt"):
    a = load(f"{out}/{m}-cuda/model.safetensors"); c = load(f"{out}/{m}-cpu/model.safetensors")
    worst = 0.0; masks = True
    for k in a:
        if a[k].ndim == 2 and "proj" in k:
            masks &= bool(np.array_equal(a[k] == 0, c[k] == 0))
            worst = max(worst, float(np.linalg.norm(a[k] - c[k]) / max(np.linalg.norm(c[k]), 1e-30)))
    print(f"{m}: masks identical {masks}; worst per-linear rel diff (Frobenius) {worst:.3g}")
    ra = json.load(open(f"{out}/{m}-cuda/report.json"))["totals"]; rc = json.load(open(f"{out}/{m}-cpu/report.json"))["totals"]
    print(f"{m}: err_after cuda {ra['err_after']:.9g} cpu {rc['err_after']:.9g}; sparsity {ra['sparsity']} {rc['sparsity']}; cg {ra['cg_iterations']} {rc['cg_iterations']}")
PY
