#!/usr/bin/env python3
"""Golden fixture for model/safetensors, made with the safetensors package.

Command (from the repo root):
    python3 tools/oracle/safetensors_fixture.py model/safetensors/testdata

Writes py.safetensors (F32, F16 and BF16 tensors, sorted names, metadata
{"format": "pt"}) with safetensors.torch.save_file, and py.json with each
tensor's dtype, shape and float32 values (base64 little-endian) as torch
reads them back. py_f32.safetensors holds the F32 tensors alone.
"""
import base64, json, os, sys

import numpy as np
import torch
from safetensors.torch import save_file, load_file


def main(out):
    g = torch.Generator().manual_seed(3)
    ts = {
        "a.weight": torch.randn(4, 6, generator=g),
        "b.bias": torch.randn(5, generator=g).to(torch.float16),
        "c.weight": torch.randn(3, 2, 2, generator=g).to(torch.bfloat16),
        "d.scalar": torch.tensor(2.5),
        "e.empty": torch.zeros(0, 3),
    }
    path = os.path.join(out, "py.safetensors")
    save_file(ts, path, metadata={"format": "pt"})
    # F32 only: the Go writer must produce these bytes exactly.
    save_file({k: ts[k] for k in ("a.weight", "d.scalar", "e.empty")},
              os.path.join(out, "py_f32.safetensors"), metadata={"format": "pt"})
    back = load_file(path)
    rec = {}
    for k, v in back.items():
        f = v.to(torch.float32).numpy().astype("<f4")
        rec[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                  "values": base64.b64encode(f.tobytes()).decode()}
    with open(os.path.join(out, "py.json"), "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
