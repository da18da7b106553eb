# Golden masks and weights for stages/update.SparseGPT, from an independent
# numpy float64 transcription of SparseGPT (Frantar & Alistarh 2023,
# "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
# Algorithm 1; details as in the reference fasterprune: dead channels H_jj=1
# and W[:, j]=0, damping percdamp·mean(diag H), U = upper Cholesky factor of
# H_d⁻¹, unstructured threshold over the block of all rows with "score <=
# sorted[int(numel*sparsity)]", N:M chosen at the first column of each group).
# This version applies each column's error to all later columns at once (no
# lazy block batching), which is the same algorithm in exact arithmetic.
#
#   python3 tools/oracle/sparsegpt_golden.py > stages/update/testdata/sparsegpt_golden.json
import json

import numpy as np


def problem(rng, rows, cols, tokens, dead=()):
    """A heavy-tailed layer: H = XᵀX/N, W Gaussian."""
    scale = np.exp(rng.standard_normal(cols))
    x = rng.standard_normal((tokens, cols)) * scale
    for j in dead:
        x[:, j] = 0.0
    h = x.T @ x / tokens
    w = rng.standard_normal((rows, cols))
    return w, h


def sparsegpt(w, h, sparsity, n, m, bs, lam):
    w, h = w.copy(), h.copy()
    rows, cols = w.shape
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += lam * np.mean(np.diag(h)) * np.eye(cols)
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # H_d^-1 = UᵀU
    d = np.diag(u)
    mask = np.zeros_like(w, dtype=bool)
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        if m == 0 and sparsity > 0:
            s = w[:, i1:i2] ** 2 / d[i1:i2] ** 2
            t = np.sort(s.ravel())[int(s.size * sparsity)]
            mask[:, i1:i2] = s <= t
        for r in range(rows):
            for i in range(i1, i2):
                if m and (i - i1) % m == 0:
                    s = w[r, i:i + m] ** 2 / d[i:i + m] ** 2
                    order = np.argsort(s, kind="stable")
                    mask[r, i + order[: m - n]] = True
                q = 0.0 if mask[r, i] else w[r, i]
                e = (w[r, i] - q) / u[i, i]
                w[r, i:] -= e * u[i, i:]
                w[r, i] = q
    return mask, w


def main():
    rng = np.random.default_rng(4001)
    cases = []
    for name, rows, cols, tokens, dead, sp, n, m, bs, lam in [
        ("unstructured50", 6, 24, 40, (), 0.5, 0, 0, 8, 0.01),
        ("unstructured30-dead-ragged", 5, 20, 40, (3,), 0.3, 0, 0, 8, 0.01),
        ("nm24", 6, 24, 40, (), 0.0, 2, 4, 8, 0.01),
        ("nm24-fewtokens-dead", 4, 16, 10, (5,), 0.0, 2, 4, 8, 0.05),
    ]:
        w, h = problem(rng, rows, cols, tokens, dead)
        mask, wout = sparsegpt(w, h, sp, n, m, bs, lam)
        cases.append(dict(name=name, rows=rows, cols=cols, sparsity=sp, n=n, m=m,
                          blocksize=bs, damping=lam, w=w.ravel().tolist(), h=h.ravel().tolist(),
                          mask=mask.ravel().astype(int).tolist(), w_out=wout.ravel().tolist()))
    json.dump({"algorithm": "sparsegpt", "cases": cases}, __import__("sys").stdout)


if __name__ == "__main__":
    main()
