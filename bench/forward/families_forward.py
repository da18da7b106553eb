"""PyTorch-CPU half of bench/forward/families.sh: per family, the forward
throughput of transformers next to optima's, alternating, in one run.

  python3 bench/forward/families_forward.py --optima BIN --threads T \
      [--seqlen 2048] [--repeats R] NAME=DIR [NAME=DIR ...]

For each model directory (written by `families -write`), loads it with
AutoModelForCausalLM.from_pretrained(dir, dtype=torch.float32) (not timed;
transformers picks the attention implementation, recorded in the output),
builds the token ids optima uses (ids[i] = (7919·i + 13) mod vocab, one
sequence of --seqlen), runs one untimed warm-up, then R times: one optima
pass (`BIN -model DIR -seqlen S -threads T` with GOMAXPROCS=T: its own load
and warm-up untimed, one timed forward with Embed, the blocks and the
logits) followed by one timed transformers pass (model(x).logits under
torch.inference_mode(), torch.set_num_threads(T)). The fastest pass of
each side is kept (the machine is shared). Prints one JSON object per
family: tokens/s of both sides, the ratio optima/PyTorch, every pass's
seconds, and the largest relative difference of the last position's first
8 logits (a check that both sides ran the same model).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--optima", required=True, help="the families binary (bench/forward/families)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("models", nargs="+", help="NAME=DIR")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    env = {**os.environ, "GOMAXPROCS": str(a.threads)}
    for spec in a.models:
        name, d = spec.split("=", 1)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        vocab = model.config.vocab_size
        x = torch.tensor([[(7919 * i + 13) % vocab for i in range(a.seqlen)]], dtype=torch.long)
        go, pt = [], []
        with torch.inference_mode():
            model(x)  # warm-up, not timed
            for _ in range(max(1, a.repeats)):
                out = subprocess.run([a.optima, "-model", d, "-seqlen", str(a.seqlen), "-threads", str(a.threads)],
                                     env=env, check=True, capture_output=True, text=True)
                go.append(json.loads(out.stdout))
                t0 = time.perf_counter()
                logits = model(x).logits
                pt.append(time.perf_counter() - t0)
        ref = logits[0, -1, :8].double()
        got = torch.tensor(go[0]["last_logits"], dtype=torch.float64)
        rel = ((got - ref).abs().max() / ref.abs().max()).item()
        best_go = min(r["seconds"] for r in go)
        best_pt = min(pt)
        print(json.dumps({
            "family": name,
            "architecture": model.config.architectures[0],
            "layers": model.config.num_hidden_layers,
            "tokens": a.seqlen,
            "threads": a.threads,
            "attn_implementation": model.config._attn_implementation,
            "optima_tokens_per_second": a.seqlen / best_go,
            "pytorch_tokens_per_second": a.seqlen / best_pt,
            "ratio_optima_pytorch": best_pt / best_go,
            "optima_pass_seconds": [r["seconds"] for r in go],
            "pytorch_pass_seconds": pt,
            "last_logits_max_rel_diff": rel,
        }), flush=True)
        del model


if __name__ == "__main__":
    sys.exit(main())
