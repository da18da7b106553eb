#!/usr/bin/env python3
"""Renders the anchors' JSON (anchors.py torch / mpax) into the Markdown
tables of bench/cuda/README.md: per layer and solver the seconds, the ratio to
the layer's FP32 GEMM floor (stages/solve's PCG product count × cuBLAS SGEMM
seconds per row, measured by cudabench in the same run), the largest relative
objective gap to the exact optimum of the solver's own problem, and the
relative reconstruction error (undamped) on the sampled rows; then one
summary line per solver for the whole block and ×32 for the 8B model.

  python3 bench/cuda/render.py --torch OUT/anchors_torch.json \
      --mpax OUT/anchors_mpax.json > OUT/anchors.md
"""

import argparse
import json
import os
import sys

SOLVERS = [  # key, label
    ("optima_cuda", "OPTIMA-Go, kernels/cuda PCG"),
    ("torch_pcg", "PyTorch batched PCG (same algorithm)"),
    ("sparsegpt_wanda_mask", "SparseGPT update, Wanda mask"),
    ("sparsegpt_own_mask", "SparseGPT, its own 50% mask"),
    ("exact_f64_damped", "float64 direct (exact, damped)"),
    ("exact_f64_undamped", "float64 direct (exact, undamped)"),
]


def fmt(v, f="{:.3g}"):
    if v is None:
        return "–"
    return f.format(v)


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def render(tor, mp, blocks=32):
    out = []
    floors = {}
    layers = tor["layers"] if tor else []
    for L in layers:
        floors[L["name"]] = L["gemm_floor_sec"]
    mruns = mp["runs"] if mp else []
    for r in mruns:
        floors.setdefault(r["name"], r["gemm_floor_sec"])
    head = []
    if tor:
        head.append(f"device {tor['device']}, torch {tor['torch']}; λ = {tor['damping']}, tol {tor['tol']}, "
                    f"max {tor['max_iter']} iterations; gaps on {tor['sample_rows']} sampled rows per layer")
    if mp:
        head.append(f"jax {mp['jax']} ({mp['backend']}), mpax {mp['mpax']}; {mp['batches']} mini-batches per run")
    out += ["; ".join(head), ""]
    out.append("| layer | shape | solver | problem | seconds | × floor | max gap (own problem) | rel. err (undamped) | notes |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    names = [L["name"] for L in layers] + [r["name"] for r in mruns if r["name"] not in {L["name"] for L in layers}]
    for name in dict.fromkeys(names):
        L = next((x for x in layers if x["name"] == name), None)
        shape = f"{L['rows']}×{L['in']}" if L else next(f"{r['rows']}×{r['in']}" for r in mruns if r["name"] == name)
        fl = floors.get(name)
        out.append(f"| {name} | {shape} | FP32 GEMM floor | | {fmt(fl, '{:.2f}')} | 1 | | | |")
        if L:
            for key, label in SOLVERS:
                s = L["solvers"].get(key)
                if not s:
                    continue
                sec = s.get("seconds")
                note = []
                if "mean_iterations" in s:
                    note.append(f"iters {s['mean_iterations']:.1f}/{s['max_iterations']}, fallback {s['fallback_rows']}")
                if "device_sec" in s:
                    note.append(f"on device {s['device_sec']:.2f} s")
                if s.get("cholesky_failures"):
                    note.append(f"{s['cholesky_failures']} Cholesky failures (LU used)")
                if "own_mask_exact_rel_err" in s:
                    note.append(f"exact on its mask {s['own_mask_exact_rel_err']:.4g}")
                out.append(f"| | | {label} | {s['problem']} | {fmt(sec, '{:.2f}')} | "
                           f"{fmt(sec / fl if sec is not None and fl else None, '{:.2f}')} | {fmt(s.get('gap_max'), '{:.1e}')} | "
                           f"{fmt(s.get('rel_err'), '{:.5f}')} | {'; '.join(note)} |")
        for r in mruns:
            if r["name"] != name or "layer_sec_est" not in r:
                continue
            note = (f"{len(r['batch_sec'])} of {r['batches_in_layer']} mini-batches of {r['mini_batch']} rows timed "
                    f"({', '.join(f'{t:.1f}' for t in r['batch_sec'])} s), optimal {min(r['optimal_fraction']):.2f}, "
                    f"iterations mean {max(r['iterations_mean']):.0f} max {max(r['iterations_max'])}; "
                    f"damped gap {r['gap_damped_max']:.1e}")
            sec = r["layer_sec_est"]
            out.append(f"| | | MPAX raPDHG tol {r['tol']:g} (OPTIMA's call) | undamped | ≈{sec:.0f} (est.) | "
                       f"{fmt(sec / fl if fl else None, '{:.0f}')} | {fmt(r['gap_max'], '{:.1e}')} | {r['rel_err']:.5f} | {note} |")
    # Summary over the block.
    out += ["", f"Whole block (the layers above) and ×{blocks} for the 8B model:", "",
            "| solver | layers | block s | × floor | 8B s (×32) | worst gap |", "|---|---|---|---|---|---|"]
    fsum = sum(floors.get(L["name"], 0) for L in layers)
    for key, label in SOLVERS:
        secs = [L["solvers"][key].get("seconds") for L in layers if key in L["solvers"]]
        if not secs or any(s is None for s in secs):
            continue
        gaps = [L["solvers"][key].get("gap_max") or 0 for L in layers if key in L["solvers"]]
        t = sum(secs)
        out.append(f"| {label} | {len(secs)} | {t:.1f} | {t / fsum if fsum else float('nan'):.2f} | {t * blocks:.0f} | {max(gaps):.1e} |")
    if layers:
        out.append(f"| FP32 GEMM floor | {len(layers)} | {fsum:.1f} | 1 | {fsum * blocks:.0f} | |")
    for tol in sorted({r["tol"] for r in mruns}):
        rs = [r for r in mruns if r["tol"] == tol and "layer_sec_est" in r]
        if not rs:
            continue
        t = sum(r["layer_sec_est"] for r in rs)
        fl = sum(floors.get(r["name"], 0) for r in rs)
        out.append(f"| MPAX tol {tol:g} (est.) | {len(rs)}: {','.join(r['name'] for r in rs)} | {t:.0f} | "
                   f"{t / fl if fl else float('nan'):.0f} | {t * blocks:.0f} (these layers only) | {max(r['gap_max'] for r in rs):.1e} |")
    if mp and mp.get("skipped"):
        out.append(f"\nMPAX runs not started (deadline): {', '.join(mp['skipped'])}")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch", help="anchors.py torch output")
    ap.add_argument("--mpax", help="anchors.py mpax output")
    ap.add_argument("--blocks", type=int, default=32, help="blocks of the model for the ×blocks column")
    args = ap.parse_args(argv)
    tor, mp = load(args.torch), load(args.mpax)
    if tor is None and mp is None:
        sys.exit("render: neither --torch nor --mpax names an existing file")
    sys.stdout.write(render(tor, mp, args.blocks))


if __name__ == "__main__":
    main()
