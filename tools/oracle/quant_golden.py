"""Golden fixtures for stages/quant: AbsMax, tiled AbsMax, SLiM-Quant cap and
GPTQ on a mask, written from the SLiM and GPTQ/SparseGPT papers and code
(an independent float64 numpy port; no optima code is used).

    python3 tools/oracle/quant_golden.py > stages/quant/testdata/golden.json
"""
import json
import numpy as np

rng = np.random.default_rng(7)


def heavy(rows, cols):
    # Student-t weights with a few outlier columns, like LLM layers.
    w = rng.standard_t(4, size=(rows, cols)) * 0.02
    w[:, rng.choice(cols, 2, replace=False)] *= 8
    return w.astype(np.float32)


def absmax_codes(w, bits):
    maxq = 2 ** (bits - 1) - 1
    alpha = np.abs(w.astype(np.float64)).max()
    step = alpha / maxq
    return np.clip(np.round(w / step), -maxq - 1, maxq), step


def tiled(w, bits, g):
    maxq = 2 ** (bits - 1) - 1
    rows, cols = w.shape
    w64 = w.astype(np.float64).reshape(rows, cols // g, g)
    alpha = np.abs(w64).max(axis=2, keepdims=True)
    step = alpha / maxq
    c = np.clip(np.round(np.where(step > 0, w64 / np.where(step > 0, step, 1), 0)), -maxq - 1, maxq)
    return c.reshape(rows, cols), step.reshape(-1)


def slim_cap(w, bits):
    a = np.abs(w.astype(np.float64)).ravel()
    nb = max(512, min(a.size // 1000, 20000))
    pdf, edges = np.histogram(a, bins=nb, density=True)
    val = (edges[:-1] + edges[1:]) / 2
    dx = val[1] - val[0]

    def err(index):
        alpha = val[index]
        d = alpha / 2 ** bits
        qv = np.floor(val[:index] / d) * d
        ql = np.sum(pdf[:index] * (val[:index] - qv) ** 2) * dx
        cl = np.sum(pdf[index:] * (val[index:] - alpha) ** 2) * dx
        return ql + cl

    idx = list(range(0, nb, nb // 10))[:11]
    losses = [err(i) for i in idx]
    tp = int(np.argmin(losses))
    start, end = idx[max(tp - 1, 0)], idx[min(tp + 1, len(idx) - 1)]
    fine = [err(i) for i in range(start, end)]
    return float(val[start + int(np.argmin(fine))])


def gptq(w, h, pruned, bits, g, blocksize=128):
    """SparseGPT-style lazy-batch GPTQ on a fixed mask, float64."""
    maxq = 2 ** (bits - 1) - 1
    W = w.astype(np.float64).copy()
    rows, cols = W.shape
    Hinv = np.linalg.inv(h)
    U = np.linalg.cholesky(Hinv).T  # upper, Hinv = U^T U
    if g == 0:
        step = np.full(rows, np.abs(np.where(pruned, 0, W)).max() / maxq)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        for i in range(i2 - i1):
            j = i1 + i
            if g and j % g == 0:
                blk = np.concatenate([W1[:, i:], W[:, i2:]], axis=1)[:, : g]
                pm = pruned[:, j:j + g]
                step = np.abs(np.where(pm, 0, blk)).max(axis=1) / maxq
            w_ = W1[:, i]
            d = U[j, j]
            safe = np.where(step > 0, step, 1)
            q = np.where(step > 0, np.clip(np.round(w_ / safe), -maxq - 1, maxq) * step, 0)
            q = np.where(pruned[:, j], 0, q)
            e = (w_ - q) / d
            W1[:, i:] -= np.outer(e, U[j, j:i2])
            W1[:, i] = q
            Err1[:, i] = e
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W


out = {}
w = heavy(24, 64)
c, s = absmax_codes(w, 4)
out["absmax"] = {"rows": 24, "cols": 64, "bits": 4, "w": w.ravel().tolist(), "codes": c.ravel().astype(int).tolist(), "step": s}
c, s = tiled(w, 3, 16)
out["tiled"] = {"rows": 24, "cols": 64, "bits": 3, "group": 16, "w": w.ravel().tolist(), "codes": c.ravel().astype(int).tolist(), "steps": s.tolist()}
big = heavy(520, 1000)  # 520,000 weights: 520 bins, coarse step 52, only 10 coarse points
out["slim"] = {"rows": 520, "cols": 1000, "caps": {str(b): slim_cap(big, b) for b in (2, 3, 4, 8)},
               "small_caps": {str(b): slim_cap(w, b) for b in (2, 4)}}
# The big matrix is too large for JSON; ship it as float32 little-endian.
big.astype("<f4").tofile("stages/quant/testdata/slim_w.f32")

rows, cols, n = 16, 48, 400
x = rng.standard_normal((n, cols)) * np.exp(rng.standard_normal(cols))
h = x.T @ x / n
h += 0.01 * np.mean(np.diag(h)) * np.eye(cols)
w = heavy(rows, cols)
pruned = np.zeros((rows, cols), dtype=bool)
for i in range(rows):
    pruned[i, rng.choice(cols, cols // 2, replace=False)] = True
for g in (0, 16):
    # Groups aligned with blocks, so a group's step sees fully compensated
    # weights (optima's rule; GPTQ's code reads stale columns past the block).
    wq = gptq(w, h, pruned, 4, g, blocksize=g or 20)
    out[f"gptq_g{g}"] = {"rows": rows, "cols": cols, "bits": 4, "group": g, "w": w.ravel().tolist(),
                         "h": h.ravel().tolist(), "pruned": pruned.ravel().astype(int).tolist(), "wq": wq.ravel().tolist()}
print(json.dumps(out))
