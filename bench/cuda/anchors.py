#!/usr/bin/env python3
"""Anchors for the OPTIMA row re-fit benchmark (bench/cuda), on the layers that
`cudabench --dump DIR` wrote (block 0 of the Llama-3.1-8B-shaped run: undamped
Hessians XᵀX of the synthetic heavy-tailed activations, random weights, 50%
Wanda masks, and stages/solve's re-fitted weights).

Subcommands (each writes one JSON file, rewritten after every layer so a run
cut short keeps what it finished):

  torch  --data DIR --out anchors_torch.json
      For every dumped linear: the float64 direct solve of sampled rows
      (Cholesky of H_SS, damped and undamped: the exact optima), the objective
      of stages/solve's result on those rows, a PyTorch batched Jacobi-PCG of
      the same damped problem (same tolerance, iteration cap, float32 GEMMs,
      float64 vectors, converged rows leave the GEMM, float64 direct fallback),
      and SparseGPT's update (its column-by-column OBS sweep, blocks of 128,
      1% damping) with the mask fixed to the Wanda mask, and with its own
      adaptive 50% mask. Saves the exact optima as DIR/<name>.refs.npz.

  mpax   --data DIR --out anchors_mpax.json [--plan q_proj:1e-2,...]
      The reference OPTIMA solver: MPAX raPDHG called as
      Paramathic/optima optima/weight_update.py update_weights_qp calls it
      (Q = XᵀX/tokens undamped in float32, c = 0, A = 0, b = 0, G = 1ᵀ,
      h = −1e5, pruned δ_j ∈ [−w_j, −w_j + 1e-4], free elsewhere,
      create_qp(use_sparse_matrix=False), raPDHG(eps_abs = eps_rel = tol,
      iteration_limit = 100000), jax.vmap over rows in mini-batches of
      min(rows, max(1, 128·12·2²⁰ // in²)) rows, pruned entries zeroed after).
      It solves the sampled rows (plus other rows to fill a mini-batch) for
      --batches mini-batches per (layer, tolerance) and extrapolates the
      layer's seconds from the last batch.

Objectives: f(ŵ) = (ŵ − w)ᵀ H (ŵ − w) in float64, with H undamped or damped
(H + λ·mean(diag H)·I, λ from the manifest). A solver's gap is
|f(ŵ) − f*| / f* per sampled row on its own problem (damped for stages/solve,
the PyTorch PCG and SparseGPT; undamped for MPAX, as OPTIMA calls it);
rel_err is Σ f_undamped(ŵ) / Σ wᵀHw over the sampled rows (the layer's
relative reconstruction error on them).

Test on a CPU at small shapes (what bench/cuda/anchors.sh runs at full size):
  go build -o /tmp/cb ./bench/cuda && /tmp/cb --backend cpu --layers 1 \
    --hidden 64 --intermediate 160 --kv-dim 32 --tokens 512 --dump /tmp/d
  python3 bench/cuda/anchors.py torch --data /tmp/d --out /tmp/t.json --rows 8
  python3 bench/cuda/anchors.py mpax --data /tmp/d --out /tmp/m.json --rows 8
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np


def load_manifest(data):
    with open(os.path.join(data, "manifest.json")) as f:
        return json.load(f)


def sample_rows(rows, k, seed, name):
    """Sorted sample of min(k, rows) row indices, the same for both phases."""
    rng = np.random.default_rng([seed, sum(name.encode())])
    return np.sort(rng.choice(rows, size=min(k, rows), replace=False))


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    os.replace(tmp, path)


def stats(gaps):
    g = np.abs(np.asarray(gaps, dtype=np.float64))
    return {"gap_max": float(g.max()) if g.size else None, "gap_mean": float(g.mean()) if g.size else None}


# ---------------------------------------------------------------- torch phase


def torch_phase(args):
    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if args.require_gpu and dev.type != "cuda":
        sys.exit("anchors torch: --require-gpu but torch sees no CUDA device")
    # FP32 GEMMs, not TF32 (the floor and stages/solve use FP32).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    man = load_manifest(args.data)
    lam, tol, maxit = man["damping"], man["tol"], man["max_iter"]
    res = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "damping": lam, "tol": tol, "max_iter": maxit,
           "sample_rows": args.rows, "layers": []}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # Warm up cuBLAS/cuSOLVER so no layer pays the library start.
    a = torch.randn(256, 256, device=dev, dtype=torch.float32)
    (a @ a).sum().item()
    torch.linalg.cholesky(a.double() @ a.double().T + 256 * torch.eye(256, device=dev, dtype=torch.float64))
    sync()

    t_start = time.time()
    hcache = {}
    only = set(args.layers.split(",")) if args.layers else None
    # The layers MPAX's plan starts with first, in case the deadline cuts
    # this phase short.
    prio = {n: i for i, n in enumerate(["q_proj", "down_proj", "gate_proj", "o_proj", "k_proj", "up_proj", "v_proj"])}
    for L in sorted(man["layers"], key=lambda L: prio.get(L["name"], len(prio))):
        if only and L["name"] not in only:
            continue
        if args.deadline and time.time() > args.deadline:
            print(f"torch: deadline reached, skipping {L['name']} and later", flush=True)
            res["skipped_after"] = L["name"]
            break
        name, n, rows = L["name"], L["in"], L["rows"]
        if L["hessian"] not in hcache:
            hcache.clear()
            hcache[L["hessian"]] = np.load(os.path.join(args.data, L["hessian"]))
        H64np = hcache[L["hessian"]]
        W = np.load(os.path.join(args.data, L["w"]))
        P = np.load(os.path.join(args.data, L["mask"]))
        Wopt = np.load(os.path.join(args.data, L["w_optima"]))
        H = torch.from_numpy(H64np).to(dev)
        H = (H + H.T) / 2
        shift = lam * float(torch.diagonal(H).mean())
        Hd = H.clone()
        Hd.diagonal().add_(shift)
        idx = sample_rows(rows, args.rows, args.seed, name)
        Wt = torch.from_numpy(W).to(dev)
        Pt = torch.from_numpy(P).to(dev)
        Ws, Ps = Wt[idx].double(), Pt[idx]

        def f(Hm, What, Wr=Ws):
            d = What.double() - Wr
            return ((d @ Hm) * d).sum(1)

        denom = ((Ws @ H) * Ws).sum(1)
        ex_d, fail_d = exact_rows(torch, Hd, Ws, Ps)
        ex_u, fail_u = exact_rows(torch, H, Ws, Ps)
        fd_star, fu_star = f(Hd, ex_d), f(H, ex_u)
        np.savez(os.path.join(args.data, name + ".refs.npz"), rows=idx, f_damped=fd_star.cpu().numpy(),
                 f_undamped=fu_star.cpu().numpy(), denom=denom.cpu().numpy(), shift=shift)
        lr = {"name": name, "rows": rows, "in": n, "sample": len(idx), "gemm_floor_sec": L["gemm_floor_sec"],
              "mask_only_rel_err": float(f(H, Ws * (~Ps)).sum() / denom.sum()), "solvers": {}}
        lr["solvers"]["exact_f64_damped"] = {"rel_err": float(f(H, ex_d).sum() / denom.sum()), "gap_max": 0.0,
                                             "cholesky_failures": fail_d, "problem": "damped"}
        lr["solvers"]["exact_f64_undamped"] = {"rel_err": float(fu_star.sum() / denom.sum()), "gap_max": 0.0,
                                               "cholesky_failures": fail_u, "problem": "undamped"}

        def judge(What, own, fstar_own=None):
            fo = f(Hd if own == "damped" else H, What)
            fstar = fstar_own if fstar_own is not None else (fd_star if own == "damped" else fu_star)
            out = stats(((fo - fstar) / fstar).cpu().numpy())
            out["rel_err"] = float(f(H, What).sum() / denom.sum())
            out["gap_undamped_max"] = float(((f(H, What) - fu_star) / fu_star).abs().max())
            out["problem"] = own
            return out

        # stages/solve on the GPU (cudabench's timing of this very layer).
        o = judge(torch.from_numpy(Wopt).to(dev)[idx], "damped")
        o.update(seconds=L["prepare_sec"] + L["solve_sec"], pcg_sec=L["pcg_sec"], mean_iterations=L["mean_iterations"],
                 max_iterations=L["max_iterations"], fallback_rows=L["fallback_rows"],
                 rel_err_layer=L["rel_err_after"], note="cudabench (Go, kernels/cuda); prepare is 0 for a linear sharing its group's Problem")
        lr["solvers"]["optima_cuda"] = o

        # PyTorch batched PCG, timed from host arrays to host result.
        sync()
        t0 = time.perf_counter()
        Hg = torch.from_numpy(H64np).to(dev)
        Wg = torch.from_numpy(W).to(dev)
        Pg = torch.from_numpy(P).to(dev)
        sync()
        t1 = time.perf_counter()
        Wp, info = torch_pcg(torch, Hg, Wg, Pg, lam, tol, maxit, sync)
        sync()
        t2 = time.perf_counter()
        Wp_host = Wp.cpu()
        t3 = time.perf_counter()
        del Hg, Wg, Pg
        o = judge(Wp[idx], "damped")
        o.update(seconds=t3 - t0, device_sec=t2 - t1, **info)
        o["rel_err_layer"] = layer_rel_err(torch, H, Wt, Wp)
        lr["solvers"]["torch_pcg"] = o
        del Wp, Wp_host

        # SparseGPT, Wanda mask and its own mask.
        for key, fixed in (("sparsegpt_wanda_mask", True), ("sparsegpt_own_mask", False)):
            sync()
            t0 = time.perf_counter()
            Hg = torch.from_numpy(H64np).to(dev)
            Wg = torch.from_numpy(W).to(dev)
            Pg = torch.from_numpy(P).to(dev) if fixed else None
            sync()
            t1 = time.perf_counter()
            Wq, M = sparsegpt(torch, Hg, Wg, Pg, man["tokens"], sparsity=0.5, blocksize=128, percdamp=lam)
            sync()
            t2 = time.perf_counter()
            Wq.cpu()
            t3 = time.perf_counter()
            del Hg, Wg
            if fixed:
                o = judge(Wq[idx], "damped")
            else:  # the exact optimum under SparseGPT's own mask
                ex_own, _ = exact_rows(torch, Hd, Ws, M[idx])
                o = judge(Wq[idx], "damped", fstar_own=f(Hd, ex_own))
                o["own_mask_exact_rel_err"] = float(f(H, ex_own).sum() / denom.sum())
                o["sparsity"] = float(M.float().mean())
            o.update(seconds=t3 - t0, device_sec=t2 - t1)
            o["rel_err_layer"] = layer_rel_err(torch, H, Wt, Wq)
            lr["solvers"][key] = o
            del Wq, M
        res["layers"].append(lr)
        write_json(args.out, res)
        s = lr["solvers"]
        print(f"torch {name:9s} {rows}x{n}: optima {s['optima_cuda']['seconds']:.2f}s gap {s['optima_cuda']['gap_max']:.1e} | "
              f"torch-pcg {s['torch_pcg']['seconds']:.2f}s gap {s['torch_pcg']['gap_max']:.1e} it {s['torch_pcg']['mean_iterations']:.1f} | "
              f"sparsegpt {s['sparsegpt_wanda_mask']['seconds']:.2f}s gap {s['sparsegpt_wanda_mask']['gap_max']:.1e} | "
              f"rel err exact {s['exact_f64_damped']['rel_err']:.5f} sgpt {s['sparsegpt_wanda_mask']['rel_err']:.5f} "
              f"sgpt-own {s['sparsegpt_own_mask']['rel_err']:.5f}  ({time.time() - t_start:.0f}s)", flush=True)
        del H, Hd, Wt, Pt
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    write_json(args.out, res)


def exact_rows(torch, Hm, Wr, Pr):
    """Float64 direct solve per row: ŵ_S = w_S + H_SS⁻¹ H_SP w_P, ŵ_P = 0
    (Cholesky; LU where Cholesky fails). Returns ([k, in] float64, failures)."""
    out = torch.zeros_like(Wr, dtype=torch.float64)
    fails = 0
    for i in range(Wr.shape[0]):
        S = torch.nonzero(~Pr[i]).squeeze(1)
        Pi = torch.nonzero(Pr[i]).squeeze(1)
        w = Wr[i].double()
        if S.numel() == 0:
            continue
        A = Hm[S][:, S]
        b = Hm[S][:, Pi] @ w[Pi]
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            d = torch.cholesky_solve(b.unsqueeze(1), L).squeeze(1)
        else:
            fails += 1
            d = torch.linalg.solve(A, b)
        out[i, S] = w[S] + d
    return out, fails


def layer_rel_err(torch, H, W0, W1):
    """Σ_rows (w1 − w0)ᵀH(w1 − w0) / Σ w0ᵀH w0 over the whole layer, float64,
    in row chunks."""
    num = den = 0.0
    for r0 in range(0, W0.shape[0], 2048):
        a = W0[r0:r0 + 2048].double()
        d = W1[r0:r0 + 2048].double() - a
        num += float(((d @ H) * d).sum())
        den += float(((a @ H) * a).sum())
    return num / den


def torch_pcg(torch, H64, W, P, lam, tol, maxit, sync):
    """stages/solve's batched Jacobi-PCG in PyTorch: H_d = sym(H) + λ·mean(diag H)·I;
    for each row solve H_SS δ = (H_d (w ⊙ 1_P))_S from δ = 0 with the products
    H_d·p in float32 (H_d rounded to float32) and every vector and scalar in
    float64; a row stops at ‖r‖ ≤ tol·‖b‖ and leaves the working set (the
    GEMM shrinks); rows not converged in maxit iterations, or with pᵀHp ≤ 0,
    are solved by float64 Cholesky of H_SS. Returns (ŵ [rows, in] float32,
    info)."""
    rows, n = W.shape
    Hs = (H64 + H64.T) / 2
    Hs.diagonal().add_(lam * float(torch.diagonal(Hs).mean()))
    H32 = Hs.float()
    invD = 1.0 / torch.diagonal(Hs)
    S = ~P
    Sd = S.double()
    B = ((W * P).float() @ H32).double() * Sd  # b = (H_d w_P)_S
    bnorm = B.norm(dim=1)
    nk = S.sum(1)
    X = torch.zeros(rows, n, dtype=torch.float64, device=W.device)
    iters = torch.zeros(rows, dtype=torch.int64, device=W.device)
    active = (nk > 0) & (bnorm > 0)
    idx = torch.nonzero(active).squeeze(1)
    r = B[idx]
    del B
    z = r * invD
    p = z.clone()
    rz = (r * z).sum(1)
    x = torch.zeros_like(r)
    bn = bnorm[idx]
    Sw = Sd[idx]
    fallback = []
    gemm_rows = 0
    it = 0
    while idx.numel() > 0 and it < maxit:
        it += 1
        q = (p.float() @ H32).double() * Sw
        gemm_rows += idx.numel()
        pq = (p * q).sum(1)
        broke = ~(pq > 0) | torch.isinf(pq)
        alpha = torch.where(broke, torch.zeros_like(pq), rz / pq)
        x += alpha[:, None] * p
        r -= alpha[:, None] * q
        conv = r.norm(dim=1) <= tol * bn
        z = r * invD
        rzn = (r * z).sum(1)
        p = z + (rzn / rz)[:, None] * p
        rz = rzn
        iters[idx] = it
        done = conv | broke
        if bool(done.any()):
            X[idx[done]] = x[done]
            if bool(broke.any()):
                fallback += idx[broke].tolist()
            keep = ~done
            idx, x, r, p, rz, bn, Sw = idx[keep], x[keep], r[keep], p[keep], rz[keep], bn[keep], Sw[keep]
    fallback += idx.tolist()  # not converged within maxit
    X[idx] = x
    out = ((W.double() + X) * Sd).float()
    if fallback:
        fr = torch.tensor(sorted(fallback), device=W.device)
        ex, _ = exact_rows(torch, Hs, W[fr].double(), P[fr])
        out[fr] = ex.float()
    nonempty = nk > 0
    info = {"mean_iterations": float(iters[nonempty].double().mean()) if bool(nonempty.any()) else 0.0,
            "max_iterations": int(iters.max()) if rows else 0, "fallback_rows": len(fallback), "gemm_rows": gemm_rows + rows}
    return out, info


def sparsegpt(torch, H64, W, P, tokens, sparsity, blocksize, percdamp):
    """SparseGPT's update (Frantar & Alistarh 2023, Algorithm 1) in float32:
    H = 2·XᵀX/tokens damped by percdamp·mean(diag H), U = upper Cholesky factor
    of H⁻¹; columns in blocks of `blocksize`, each column's pruned entries are
    zeroed and their error (w − q)/U_ii is spread over the block's later
    columns, then the block's errors over all later columns (one GEMM). P
    fixed ([rows, in] bool, true = pruned) or None: the mask is chosen per
    block as the `sparsity` fraction of smallest w²/U_ii² (its own mask).
    Returns (ŵ [rows, in] float32, mask)."""
    rows, n = W.shape
    H = (2.0 / tokens) * H64
    H = ((H + H.T) / 2).float()
    W = W.clone().float()
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(percdamp * float(torch.diagonal(H).mean()))
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    U = torch.linalg.cholesky(Hinv, upper=True)
    del H, L, Hinv
    M = torch.zeros(rows, n, dtype=torch.bool, device=W.device)
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        if P is None:
            score = W1 ** 2 / torch.diagonal(U1)[None, :] ** 2
            th = torch.sort(score.flatten())[0][int(score.numel() * sparsity)]
            m1 = score <= th
        else:
            m1 = P[:, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            q = w.masked_fill(m1[:, i], 0)
            Q1[:, i] = q
            e = (w - q) / U1[i, i]
            W1[:, i:] -= e[:, None] * U1[i, i:][None, :]
            E1[:, i] = e
        W[:, i1:i2] = Q1
        M[:, i1:i2] = m1
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return W, M


# ----------------------------------------------------------------- MPAX phase


def mpax_phase(args):
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import jax.numpy as jnp
    from mpax import create_qp, raPDHG
    from mpax.utils import TerminationStatus

    jax.config.update("jax_enable_x64", False)  # double_precision=False, OPTIMA's default
    if args.require_gpu and jax.default_backend() != "gpu":
        sys.exit(f"anchors mpax: --require-gpu but JAX's backend is {jax.default_backend()}")
    man = load_manifest(args.data)
    lam = man["damping"]
    layers = {L["name"]: L for L in man["layers"]}
    plan = []
    for p in args.plan.split(","):
        f = p.split(":")
        if len(f) != 2:
            sys.exit(f"anchors mpax: --plan entry {p!r}: want layer:tolerance")
        plan.append((f[0], float(f[1])))
    try:
        import importlib.metadata as md
        mpax_version = md.version("mpax")
    except Exception:  # noqa: BLE001
        mpax_version = "?"
    res = {"jax": jax.__version__, "mpax": mpax_version, "backend": jax.default_backend(),
           "devices": [str(d) for d in jax.devices()], "batches": args.batches, "runs": []}
    write_json(args.out, res)

    # OPTIMA's single_optimize (weight_update.py), returning the iteration
    # count as well.
    def single_optimize(c_vector, G_matrix, h_vector, l_vector, u_vector, Q_matrix, A_matrix, b_vector,
                        eps_abs=1e-2, eps_rel=1e-2):
        qp = create_qp(Q_matrix, c_vector, A_matrix, b_vector, G_matrix, h_vector, l_vector, u_vector,
                       use_sparse_matrix=False)
        solver = raPDHG(eps_abs=eps_abs, eps_rel=eps_rel, verbose=False, iteration_limit=100_000)
        result = solver.optimize(qp)
        obj = 0.5 * jnp.dot(result.primal_solution, jnp.dot(Q_matrix, result.primal_solution)) + jnp.dot(
            c_vector, result.primal_solution)
        return result.primal_solution, obj, result.termination_status, result.iteration_count

    batch_optimize = jax.vmap(single_optimize, in_axes=(None, None, None, 0, 0, None, None, None, None, None))

    hcache = {}
    # OPTIMA calls the vmapped function eagerly, which traces and compiles
    # raPDHG's loops again on every call (the second mini-batch shows the
    # cost). It cannot simply be wrapped in jax.jit: create_qp's is_lp test
    # and raPDHG.check_config need a concrete Q (TracerBoolConversionError).
    for name, tol in plan:
        if name not in layers:
            print(f"mpax: {name} was not dumped; skipped", flush=True)
            continue
        if args.deadline and time.time() > args.deadline:
            print(f"mpax: deadline reached before {name} tol {tol}", flush=True)
            res.setdefault("skipped", []).append(f"{name}:{tol}")
            write_json(args.out, res)
            continue
        L = layers[name]
        n, rows = L["in"], L["rows"]
        if not os.path.exists(os.path.join(args.data, name + ".refs.npz")):
            print(f"mpax: no exact optima for {name} (the torch phase did not reach it); skipped", flush=True)
            res.setdefault("skipped", []).append(f"{name}:{tol} (no refs)")
            write_json(args.out, res)
            continue
        if L["hessian"] not in hcache:
            hcache.clear()
            hcache[L["hessian"]] = np.load(os.path.join(args.data, L["hessian"]))
        H64 = hcache[L["hessian"]]
        H64 = (H64 + H64.T) / 2
        shift = lam * float(np.mean(np.diag(H64)))
        W = np.load(os.path.join(args.data, L["w"]))
        P = np.load(os.path.join(args.data, L["mask"]))
        refs = np.load(os.path.join(args.data, name + ".refs.npz"))
        sample = refs["rows"]
        mb = min(rows, max(1, 128 * 12 * 1024 * 1024 // (n ** 2)))  # OPTIMA's mini-batch
        if args.mini_batch > 0:
            mb = min(rows, args.mini_batch)
        rest = np.setdiff1d(np.arange(rows), sample)
        order = np.concatenate([sample, np.random.default_rng(args.seed).permutation(rest)])
        Q = jnp.asarray((H64 / man["tokens"]).astype(np.float32))  # input_cov, float32
        c = jnp.zeros(n, jnp.float32)
        A = jnp.zeros((1, n), jnp.float32)
        b = jnp.zeros(1, jnp.float32)
        G = jnp.ones((1, n), jnp.float32)
        h = -jnp.ones(1, jnp.float32) * 1e5
        run = {"name": name, "rows": rows, "in": n, "tol": tol, "mini_batch": mb,
               "batches_in_layer": math.ceil(rows / mb), "gemm_floor_sec": L["gemm_floor_sec"], "batch_sec": [],
               "optimal_fraction": [], "iterations_mean": [], "iterations_max": []}
        res["runs"].append(run)
        solved_rows, solved = [], []
        for bi in range(args.batches):
            sel = order[bi * mb:(bi + 1) * mb]
            if sel.size == 0 or (bi > 0 and args.deadline and time.time() > args.deadline):
                break
            if bi > 0 and ((args.batch_cap > 0 and run["batch_sec"][-1] > args.batch_cap) or
                           (args.deadline and time.time() + run["batch_sec"][-1] > args.deadline)):
                run["capped"] = True  # another batch would pass the cap or the deadline
                break
            t0 = time.perf_counter()
            l = np.full((sel.size, n), -np.inf, np.float32)
            u = np.full((sel.size, n), np.inf, np.float32)
            for k, r in enumerate(sel):
                pr = P[r]
                l[k, pr] = -W[r, pr]
                u[k, pr] = -W[r, pr] + 1e-4
            sol, _, status, iters = batch_optimize(c, G, h, jnp.asarray(l), jnp.asarray(u), Q, A, b, tol, tol)
            sol = np.asarray(sol)
            dt = time.perf_counter() - t0
            status = np.asarray(status)
            iters = np.asarray(iters)
            run["batch_sec"].append(dt)
            run["optimal_fraction"].append(float(np.mean(status == TerminationStatus.OPTIMAL)))
            run["iterations_mean"].append(float(iters.mean()))
            run["iterations_max"].append(int(iters.max()))
            solved_rows.append(sel)
            solved.append(sol)
            print(f"mpax {name} tol {tol:g} batch {bi} ({sel.size} rows): {dt:.2f}s, optimal {run['optimal_fraction'][-1]:.2f}, "
                  f"iterations mean {iters.mean():.0f} max {iters.max()}", flush=True)
            write_json(args.out, res)
        if not solved:
            continue
        sr = np.concatenate(solved_rows)
        sol = np.concatenate(solved).astype(np.float64)
        # OPTIMA: best_weight = weight + δ, pruned entries set to 0 (we keep
        # float32; OPTIMA then rounds to bfloat16).
        what = W[sr].astype(np.float64) + sol
        what[P[sr]] = 0
        pos = {r: i for i, r in enumerate(sample)}
        ks = [k for k, r in enumerate(sr) if r in pos]
        js = [pos[sr[k]] for k in ks]
        d = what[ks] - W[sr[ks]].astype(np.float64)
        fu = np.einsum("ij,ij->i", d @ H64, d)
        fd = fu + shift * np.einsum("ij,ij->i", d, d)
        g = stats((fu - refs["f_undamped"][js]) / refs["f_undamped"][js])
        run.update(g)
        run["gap_damped_max"] = float(np.max(np.abs((fd - refs["f_damped"][js]) / refs["f_damped"][js])))
        run["rel_err"] = float(fu.sum() / refs["denom"][js].sum())
        run["exact_undamped_rel_err"] = float(refs["f_undamped"][js].sum() / refs["denom"][js].sum())
        run["gap_rows"] = len(ks)
        # The last batch is the steady state; the first one's excess over it
        # (tracing and compiling) is paid once per layer in OPTIMA's loop
        # only if it does not recompile, which a second batch shows.
        steady = run["batch_sec"][-1]
        run["layer_sec_est"] = steady * run["batches_in_layer"] + (run["batch_sec"][0] - steady)
        run["problem"] = "undamped"
        write_json(args.out, res)
        print(f"mpax {name} tol {tol:g}: gap max {run['gap_max']:.2e} (undamped, {len(ks)} rows), rel err {run['rel_err']:.5f} "
              f"(exact {run['exact_undamped_rel_err']:.5f}); layer estimate {run['layer_sec_est']:.0f}s", flush=True)
    write_json(args.out, res)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["torch", "mpax"])
    ap.add_argument("--data", required=True, help="cudabench --dump folder")
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--rows", type=int, default=32, help="sampled rows per layer for the objective gaps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", default="", help="torch: comma-separated subset of the dumped linears")
    ap.add_argument("--plan", default="q_proj:1e-2,q_proj:1e-3,down_proj:1e-2,down_proj:1e-3,gate_proj:1e-2,o_proj:1e-2,"
                    "k_proj:1e-2,gate_proj:1e-3,o_proj:1e-3,k_proj:1e-3", help="mpax: layer:tolerance runs, in order")
    ap.add_argument("--batches", type=int, default=2, help="mpax: mini-batches per (layer, tolerance)")
    ap.add_argument("--batch-cap", type=float, default=0,
                    help="mpax: no further mini-batch of a run once one took longer than this many seconds (0: none); "
                    "none either when the last one's seconds would pass --deadline")
    ap.add_argument("--mini-batch", type=int, default=0,
                    help="mpax: rows per vmap call (0: OPTIMA's min(rows, max(1, 128·12·2²⁰ // in²)); for tests)")
    ap.add_argument("--require-gpu", action="store_true", help="fail unless torch (torch phase) or JAX (mpax) has a GPU")
    ap.add_argument("--deadline", type=float, default=0, help="Unix time after which no new layer (run) starts")
    ap.add_argument("--cpu", action="store_true", help="torch: stay on the CPU even with a GPU")
    args = ap.parse_args(argv)
    if not os.path.exists(os.path.join(args.data, "manifest.json")):
        sys.exit(f"anchors: {args.data}/manifest.json not found (run cudabench --dump {args.data} first)")
    (torch_phase if args.phase == "torch" else mpax_phase)(args)


if __name__ == "__main__":
    main()
