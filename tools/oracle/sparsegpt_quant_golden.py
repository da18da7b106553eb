# Golden masks, weights and codes for stages/update.SparseGPT's joint mode
# (Options.Quant): SparseGPT with quantization inside its sweep (Frantar &
# Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned
# in One-Shot", §3.5 joint sparsification and quantization; the reference
# fasterprune with a quantizer: after column i's mask, q = w with pruned
# entries 0, q = quantize(q), err = (w - q)/U_ii, propagated to later
# columns). An independent numpy float64 transcription on optima's grid:
# symmetric AbsMax, codes in [-2^(b-1), 2^(b-1)-1], round half to even; one
# step per tensor from max|W| before the sweep (before dead columns are
# zeroed), or one per row and group of g input columns taken at the group's
# first column from the row's compensated, not yet masked weights (GPTQ's
# groupsize rule). Steps are rounded to float32 as optima stores them. Each
# column's error is applied to all later columns at once (no lazy block
# batching: the same algorithm in exact arithmetic).
#
#   python3 tools/oracle/sparsegpt_quant_golden.py > stages/update/testdata/sparsegpt_quant_golden.json
import json
import sys

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


def f32(x):
    return float(np.float32(x))


def joint(w, h, sparsity, n, m, bs, lam, bits, g):
    w, h = w.copy(), h.copy()
    rows, cols = w.shape
    maxq = 2 ** (bits - 1) - 1
    codes = np.zeros((rows, cols), dtype=np.int64)
    if g == 0:
        steps = np.array([f32(np.abs(w).max() / maxq)])
    else:
        steps = np.zeros(rows * cols // g)

    def step(r, i):
        return steps[0] if g == 0 else steps[(r * cols + i) // g]

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
                if g and i % g == 0:
                    steps[(r * cols + i) // g] = f32(np.abs(w[r, i:i + g]).max() / maxq)
                if m and (i - i1) % m == 0:
                    s = w[r, i:i + m] ** 2 / d[i:i + m] ** 2
                    order = np.argsort(s, kind="stable")
                    mask[r, i + order[: m - n]] = True
                q = 0.0
                if not mask[r, i]:
                    st = step(r, i)
                    c = 0 if st == 0 else int(np.clip(np.round(w[r, i] / st), -maxq - 1, maxq))
                    codes[r, i] = c
                    q = c * st
                e = (w[r, i] - q) / u[i, i]
                w[r, i:] -= e * u[i, i:]
                w[r, i] = q
    return mask, w, codes, steps


def main():
    rng = np.random.default_rng(4002)
    cases = []
    for name, rows, cols, tokens, dead, sp, n, m, bs, lam, bits, g in [
        ("unstructured50-tensor-4bit", 6, 24, 40, (), 0.5, 0, 0, 8, 0.01, 4, 0),
        ("unstructured30-dead-tensor-3bit", 5, 20, 40, (3,), 0.3, 0, 0, 8, 0.01, 3, 0),
        ("unstructured50-group4-4bit", 6, 24, 40, (), 0.5, 0, 0, 8, 0.01, 4, 4),
        ("unstructured40-group16-blocks8-4bit", 4, 32, 60, (), 0.4, 0, 0, 8, 0.01, 4, 16),
        ("nm24-tensor-4bit", 6, 24, 40, (), 0.0, 2, 4, 8, 0.01, 4, 0),
        ("nm24-group8-8bit", 5, 24, 40, (), 0.0, 2, 4, 8, 0.01, 8, 8),
        ("nm24-group8-dead-fewtokens-2bit", 4, 16, 10, (5,), 0.0, 2, 4, 16, 0.05, 2, 8),
    ]:
        w, h = problem(rng, rows, cols, tokens, dead)
        mask, wout, codes, steps = joint(w, h, sp, n, m, bs, lam, bits, g)
        cases.append(dict(name=name, rows=rows, cols=cols, sparsity=sp, n=n, m=m,
                          blocksize=bs, damping=lam, bits=bits, group_size=g,
                          w=w.ravel().tolist(), h=h.ravel().tolist(),
                          mask=mask.ravel().astype(int).tolist(), w_out=wout.ravel().tolist(),
                          codes=codes.ravel().tolist(), steps=steps.tolist()))
    json.dump({"algorithm": "sparsegpt+quant", "cases": cases}, sys.stdout)


if __name__ == "__main__":
    main()
