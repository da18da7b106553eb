# Golden masks for stages/mask: the Wanda score |W_ij|·‖X_j‖₂ (Sun et al. 2023,
# eq. 1) and the magnitude score |W_ij|, compared within each output row, for a
# small random layer with deliberate ties.
#
#   python3 tools/oracle/mask_golden.py > stages/mask/testdata/mask_golden.json
#
# Unstructured: prune the first int(cols*sparsity) indices of a stable
# ascending sort of each row's scores, as the Wanda reference (locuslab/wanda,
# lib/prune.py, prune_wanda) does with torch.sort(stable=True) and scatter.
# The numpy result is cross-checked against that torch formulation here.
# N:M: in every group of M consecutive columns prune the M−N lowest scores,
# ties to the lower column (stable sort; the reference's torch.topk leaves the
# tie order unspecified).
import json

import numpy as np
import torch

rng = np.random.default_rng(20240607)
rows, cols, tokens = 8, 24, 20

# Weights on a coarse grid so that rows hold repeated |W| values (ties).
w = (rng.integers(-6, 7, size=(rows, cols)) / 4.0).astype(np.float32)
w[0, :] = 0.5  # a row of equal weights
w[1, :8] = -w[1, 8:16]  # sign-only differences
x = rng.standard_normal((tokens, cols)).astype(np.float32)
x[:, 5] = x[:, 3]  # equal column norms
x[:, 9] = 0.0  # a dead input channel

norms = np.sqrt((x.astype(np.float64) ** 2).sum(axis=0))


def scores(kind):
    s = np.abs(w.astype(np.float64))
    return s * norms[None, :] if kind == "wanda" else s


def unstructured(s, sparsity):
    k = int(cols * sparsity)
    mask = np.zeros(s.shape, dtype=bool)
    order = np.argsort(s, axis=1, kind="stable")
    np.put_along_axis(mask, order[:, :k], True, axis=1)
    # The reference formulation in torch.
    ref = torch.zeros(s.shape, dtype=torch.bool)
    idx = torch.sort(torch.from_numpy(s), dim=-1, stable=True)[1][:, :k]
    ref.scatter_(1, idx, True)
    assert (ref.numpy() == mask).all()
    return mask


def nm(s, n, m):
    mask = np.zeros(s.shape, dtype=bool)
    for g in range(0, cols, m):
        order = np.argsort(s[:, g:g + m], axis=1, kind="stable")[:, : m - n]
        np.put_along_axis(mask[:, g:g + m], order, True, axis=1)
    return mask


cases = []
for kind in ("wanda", "magnitude"):
    s = scores(kind)
    for sp in (0.3, 0.5, 0.7):
        cases.append({"selector": kind, "sparsity": sp, "pattern": "",
                      "pruned": unstructured(s, sp).astype(int).ravel().tolist()})
    for n, m in ((2, 4), (4, 8), (1, 4)):
        cases.append({"selector": kind, "sparsity": 0, "pattern": f"{n}:{m}",
                      "pruned": nm(s, n, m).astype(int).ravel().tolist()})

print(json.dumps({
    "rows": rows, "cols": cols, "tokens": tokens,
    "w": [float(v) for v in w.ravel()],
    "x": [float(v) for v in x.ravel()],
    "norms": [float(v) for v in norms],
    "cases": cases,
}))
