"""Golden fixtures for stages/lora: plain-SVD LoRA, SLiM-LoRA (error scaled by
the square roots of the input column norms before the SVD, as SLiM's
add_lora) and the Hessian-metric fit (SVD of E·L, H = L Lᵀ), as the product
B·A ([out, in]), from numpy in float64.

    python3 tools/oracle/lora_golden.py > stages/lora/testdata/golden.json
"""
import json
import numpy as np

rng = np.random.default_rng(11)
out_, in_, n = 20, 32, 300
x = rng.standard_normal((n, in_)) * np.exp(rng.standard_normal(in_))
h = x.T @ x / n
h += 0.01 * np.mean(np.diag(h)) * np.eye(in_)
colnorms = np.sum(x * x, axis=0) / n
e = rng.standard_normal((out_, in_)) * 0.01
rank_ratio = 0.25
r = int(rank_ratio * min(out_, in_))


def trunc(f, r):
    u, s, vt = np.linalg.svd(f, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


d = np.sqrt(colnorms)
svd = trunc(e, r)
slim = trunc(e * d[None, :], r) / d[None, :]
L = np.linalg.cholesky(h)
hess = trunc(e @ L, r) @ np.linalg.inv(L)
print(json.dumps({"out": out_, "in": in_, "rank_ratio": rank_ratio, "rank": r,
                  "e": e.ravel().tolist(), "h": h.ravel().tolist(), "colnorms": colnorms.tolist(),
                  "svd": svd.ravel().tolist(), "slim": slim.ravel().tolist(), "hessian": hess.ravel().tolist()}))
