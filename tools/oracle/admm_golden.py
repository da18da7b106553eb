# Golden masks and weights for stages/update.ADMM, from an independent numpy
# float64 transcription of Boža 2024 ("Fast and Effective Weight Update for
# Pruned Large Language Models", Algorithm 1 with the gradual cubic mask
# schedule of §3.2) on the column-normalised problem: G = D⁻¹HD⁻¹,
# V = W·D (D = diag(sqrt(H_jj)), 1 for dead channels), G += λ·mean(diag G)·I,
# B = V·G, K = (G + ρI)⁻¹; for t < prune_iters the mask is re-chosen on
# |V + U| at s_t = s − s(1 − (t+1)/prune_iters)³ (unstructured over the whole
# layer; N:M keeps the N largest per group and prunes the smallest of the
# rest), then Z = (V+U)⊙mask, U += V − Z, V = (B + ρ(Z − U))K. Output
# (V+U)⊙mask scaled back by D⁻¹.
#
#   python3 tools/oracle/admm_golden.py > stages/update/testdata/admm_golden.json
import json
import sys

import numpy as np


def problem(rng, rows, cols, tokens, dead=()):
    scale = np.exp(rng.standard_normal(cols))
    x = rng.standard_normal((tokens, cols)) * scale
    for j in dead:
        x[:, j] = 0.0
    return rng.standard_normal((rows, cols)), x.T @ x / tokens


def admm(w, h, sparsity, n, m, lam, iters, piters, rho):
    rows, cols = w.shape
    c = np.sqrt(np.diag(h)).copy()
    c[c == 0] = 1.0
    g = h / np.outer(c, c)
    v = w * c
    g = g + lam * np.mean(np.diag(g)) * np.eye(cols)
    b = v @ g
    k = np.linalg.inv(g + rho * np.eye(cols))
    u = np.zeros_like(v)
    s = (m - n) / m if m else sparsity
    mask = np.zeros_like(v, dtype=bool)
    for t in range(iters):
        if t < piters:
            st = s - s * (1 - (t + 1) / piters) ** 3
            kk = int(v.size * st)
            score = np.abs(v + u)
            if m:
                score = score.copy()
                for r in range(rows):
                    for g0 in range(0, cols, m):
                        order = np.argsort(-score[r, g0:g0 + m], kind="stable")
                        score[r, g0 + order[:n]] = np.inf
            order = np.argsort(score.ravel(), kind="stable")
            mask = np.zeros(v.size, dtype=bool)
            mask[order[:kk]] = True
            mask = mask.reshape(v.shape)
        z = np.where(mask, 0.0, v + u)
        u = u + v - z
        v = (b + rho * (z - u)) @ k
    out = np.where(mask, 0.0, (v + u) / c)
    return mask, out


def main():
    rng = np.random.default_rng(4003)
    cases = []
    for name, rows, cols, tokens, dead, sp, n, m, lam, iters, piters in [
        ("unstructured50", 6, 16, 40, (), 0.5, 0, 0, 0.1, 20, 15),
        ("unstructured40-dead", 5, 12, 30, (2,), 0.4, 0, 0, 0.1, 8, 5),
        ("nm24", 6, 16, 40, (), 0.0, 2, 4, 0.1, 20, 15),
    ]:
        w, h = problem(rng, rows, cols, tokens, dead)
        mask, wout = admm(w, h, sp, n, m, lam, iters, piters, 1.0)
        cases.append(dict(name=name, rows=rows, cols=cols, sparsity=sp, n=n, m=m,
                          damping=lam, iters=iters, prune_iters=piters, rho=1.0,
                          w=w.ravel().tolist(), h=h.ravel().tolist(),
                          mask=mask.ravel().astype(int).tolist(), w_out=wout.ravel().tolist()))
    json.dump({"algorithm": "admm", "cases": cases}, sys.stdout)


if __name__ == "__main__":
    main()
