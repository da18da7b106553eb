# Golden masks and weights for stages/update.Thanos, from an independent numpy
# float64 transcription of Thanos (Ilin & Richtárik 2025, "Thanos: A
# Block-wise Pruning Algorithm for Efficient Large Language Model
# Compression", Algorithm 1, non-column-structured): per block of B columns,
# the Wanda metric |W_ij|·sqrt(H_jj) on the weights updated so far selects
# the block's pruned set (unstructured: the int(rows·B·sparsity) smallest over
# the whole block; N:M: M−N smallest per group of M), then each row solves
# the multi-weight OBS problem on the trailing columns with (H_d[i1:, i1:])⁻¹,
# inverted anew at every block as in the paper.
#
#   python3 tools/oracle/thanos_golden.py > stages/update/testdata/thanos_golden.json
import json
import sys

import numpy as np


def problem(rng, rows, cols, tokens, dead=()):
    scale = np.exp(rng.standard_normal(cols))
    x = rng.standard_normal((tokens, cols)) * scale
    for j in dead:
        x[:, j] = 0.0
    return rng.standard_normal((rows, cols)), x.T @ x / tokens


def thanos(w, h, sparsity, n, m, bs, lam):
    w, h = w.copy(), h.copy()
    rows, cols = w.shape
    norms = np.sqrt(np.diag(h))
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += lam * np.mean(np.diag(h)) * np.eye(cols)
    mask = np.zeros_like(w, dtype=bool)
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        a = np.linalg.inv(h[i1:, i1:])
        metric = np.abs(w[:, i1:i2]) * norms[i1:i2]
        blk = np.zeros_like(metric, dtype=bool)
        if m == 0:
            k = int(metric.size * sparsity)
            order = np.argsort(metric.ravel(), kind="stable")
            blk.ravel()[order[:k]] = True
        else:
            for r in range(rows):
                for g in range(0, i2 - i1, m):
                    order = np.argsort(metric[r, g:g + m], kind="stable")
                    blk[r, g + order[: m - n]] = True
        mask[:, i1:i2] = blk
        for r in range(rows):
            q = np.nonzero(blk[r])[0]
            if len(q) == 0:
                continue
            lam_q = np.linalg.solve(a[np.ix_(q, q)], w[r, i1 + q])
            w[r, i1:] -= a[:, q] @ lam_q
            w[r, i1 + q] = 0.0
    return mask, w


def main():
    rng = np.random.default_rng(4002)
    cases = []
    for name, rows, cols, tokens, dead, sp, n, m, bs, lam in [
        ("unstructured50", 6, 24, 40, (), 0.5, 0, 0, 8, 0.01),
        ("unstructured30-dead-ragged", 5, 20, 40, (3,), 0.3, 0, 0, 8, 0.01),
        ("nm24", 6, 24, 40, (), 0.0, 2, 4, 8, 0.01),
        ("nm24-fewtokens-dead", 4, 16, 10, (5,), 0.0, 2, 4, 8, 0.05),
    ]:
        w, h = problem(rng, rows, cols, tokens, dead)
        mask, wout = thanos(w, h, sp, n, m, bs, lam)
        cases.append(dict(name=name, rows=rows, cols=cols, sparsity=sp, n=n, m=m,
                          blocksize=bs, damping=lam, w=w.ravel().tolist(), h=h.ravel().tolist(),
                          mask=mask.ravel().astype(int).tolist(), w_out=wout.ravel().tolist()))
    json.dump({"algorithm": "thanos", "cases": cases}, sys.stdout)


if __name__ == "__main__":
    main()
