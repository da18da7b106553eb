#!/usr/bin/env python3
"""Golden values for stages/solve: OPTIMA's exact row re-fit on one small problem.

Command (from the repository root):

    python3 tools/oracle/solve_golden.py > stages/solve/testdata/golden_small.json

Independent of the Go code: numpy only. For each row w with pruned set P and kept
set S, and the damped Hessian Hd = H + lam*mean(diag H)*I, it computes

  closed form:  w_hat_S = Hd_SS^{-1} (Hd w)_S,  w_hat_P = 0
  OBS form:     delta = -Hd^{-1}[:, P] [(Hd^{-1})_PP]^{-1} w_P,  w_hat = w + delta

and the objectives with the undamped H: obj_before = sum (w_m - w)^T H (w_m - w),
obj_after = sum (w_hat - w)^T H (w_hat - w), denom = sum w^T H w.
The Hessian is low rank (tokens < in) with log-normal column scales, so the
damping matters; one row keeps nothing (all zeros) and one prunes nothing.
"""
import json

import numpy as np

rng = np.random.default_rng(20240611)
IN, ROWS, TOKENS, LAM = 12, 6, 8, 0.01

scales = np.exp(rng.normal(0.0, 1.0, IN))
X = rng.normal(size=(TOKENS, IN)) * scales
H = X.T @ X  # un-normalised sum, float64
W = (rng.normal(size=(ROWS, IN)) * 0.5).astype(np.float32).astype(np.float64)

pruned = np.zeros((ROWS, IN), dtype=bool)
score = np.abs(W) * np.sqrt(np.diag(H))  # Wanda-like
for i in range(ROWS - 2):
    pruned[i, np.argsort(score[i], kind="stable")[: IN // 2]] = True
# 2:4 on row ROWS-2, every input pruned on row ROWS-1 is replaced below.
for g in range(0, IN, 4):
    idx = np.argsort(score[ROWS - 2, g : g + 4], kind="stable")[:2] + g
    pruned[ROWS - 2, idx] = True
pruned[ROWS - 1, :] = True  # empty kept set
pruned[0, :] = False  # nothing pruned: unchanged row

Hd = H + LAM * np.mean(np.diag(H)) * np.eye(IN)
Hinv = np.linalg.inv(Hd)
closed = np.zeros_like(W)
obs = np.zeros_like(W)
for i in range(ROWS):
    P = np.where(pruned[i])[0]
    S = np.where(~pruned[i])[0]
    w = W[i]
    if len(S) > 0:
        closed[i, S] = np.linalg.solve(Hd[np.ix_(S, S)], (Hd @ w)[S])
    if len(P) == 0:
        obs[i] = w
    else:
        delta = -Hinv[:, P] @ np.linalg.solve(Hinv[np.ix_(P, P)], w[P])
        obs[i] = w + delta
        obs[i, P] = 0.0  # exact zeros (the formula gives ~1e-16 there)


def quad(D):
    return float(np.einsum("ri,ij,rj->", D, H, D))


masked = np.where(pruned, 0.0, W)
out = {
    "in": IN,
    "rows": ROWS,
    "damping": LAM,
    "h": H.reshape(-1).tolist(),
    "w": W.reshape(-1).tolist(),
    "pruned": pruned.reshape(-1).tolist(),
    "closed_form": closed.reshape(-1).tolist(),
    "obs": obs.reshape(-1).tolist(),
    "max_abs_closed_minus_obs": float(np.max(np.abs(closed - obs))),
    "obj_before": quad(masked - W),
    "obj_after": quad(closed - W),
    "denom": quad(W),
}
print(json.dumps(out, indent=1))
