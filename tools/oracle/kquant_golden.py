#!/usr/bin/env python3
"""Golden K-quant dequantization for model/gguf from the `gguf` Python package.

Command (from the repository root):

    python3 tools/oracle/kquant_golden.py model/gguf/testdata/kquant.json

Tested with gguf 0.19.0 (gguf.quants.dequantize) and numpy. For Q4_K, Q5_K and Q6_K it draws
BLOCKS random super-blocks (256 elements each) with a fixed seed: every byte random except the
float16 scales d (and dmin), which are drawn as finite values of either sign. The JSON maps the
type name to {"blocks": n, "raw": base64 of the blocks, "want": base64 of the little-endian
float32 values gguf.quants.dequantize returns}.
"""
import base64
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from gguf.constants import GGML_QUANT_SIZES

BLOCKS = 6
# Byte offsets of the float16 super-block scales inside each block.
F16_OFFSETS = {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/gguf/testdata/kquant.json"
    rng = np.random.default_rng(20251130)
    res = {}
    for name, offs in F16_OFFSETS.items():
        qt = T[name]
        bs, ts = GGML_QUANT_SIZES[qt]
        raw = rng.integers(0, 256, size=(BLOCKS, ts), dtype=np.uint8)
        for o in offs:
            vals = (rng.standard_normal(BLOCKS) * 0.05).astype(np.float16)
            raw[:, o:o + 2] = vals.view(np.uint8).reshape(BLOCKS, 2)
        want = dequantize(raw.reshape(-1), qt).astype("<f4").reshape(-1)
        assert want.size == BLOCKS * bs and np.isfinite(want).all()
        res[name] = {"blocks": BLOCKS, "raw": base64.b64encode(raw.tobytes()).decode(),
                     "want": base64.b64encode(want.tobytes()).decode()}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
