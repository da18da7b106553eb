"""PyTorch-CPU half of bench/forward/run.sh: forward throughput of a GGUF model
loaded by transformers, on the WikiText-2 windows optima eval scores.

  python3 bench/forward/torch_forward.py --gguf MODEL.gguf --data DATA_DIR \
      --seqlen 2048 --windows N --threads T [--repeats R] [--before-pass CMD]

Loads the model with AutoModelForCausalLM.from_pretrained(dir, gguf_file=...,
dtype=torch.float32) (load time excluded), builds the WikiText-2 test stream
as optima eval does (rows of wiki.test.raw, blank lines as "", joined with
"\\n\\n", tokenized once; tokenization excluded), runs one warm-up window
(window 0, not timed), then times model(x, labels=x) (forward, LM head and
the shifted cross-entropy, i.e. the same work as optima eval's scoring) on
windows 0..N-1 of --seqlen tokens, one window per call, under
torch.inference_mode() with torch.set_num_threads(T), R times (the machine
may be shared: the fastest pass is reported), running --before-pass before
each pass. Prints one JSON object:
tokens_per_second = N·seqlen / seconds of the fastest pass, every pass's
seconds, the per-window losses and the perplexity (a check that both sides
score the same tokens).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="GGUF file (model and tokenizer)")
    ap.add_argument("--data", required=True, help="data directory holding wikitext-2-raw/wiki.test.raw")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="timed passes over the N windows; the fastest is reported")
    ap.add_argument("--before-pass", default="", help="shell command run (untimed) before each timed pass, with PASS=1..R "
                    "in its environment (run.sh runs optima eval here, so both sides sample the same moments of a shared machine)")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    d, f = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()

    with open(os.path.join(a.data, "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8") as fh:
        rows = [r if r.strip() else "" for r in fh]
    ids = tok("\n\n".join(rows), add_special_tokens=False)["input_ids"]
    n = min(a.windows, len(ids) // a.seqlen)
    if n < 1:
        sys.exit(f"torch_forward: stream of {len(ids)} tokens is shorter than seqlen {a.seqlen}")
    t = torch.tensor(ids[: n * a.seqlen], dtype=torch.long).view(n, a.seqlen)

    passes = []
    with torch.inference_mode():
        model(t[0:1], labels=t[0:1])  # warm-up, not timed
        for r in range(max(1, a.repeats)):
            if a.before_pass:
                subprocess.run(a.before_pass, shell=True, check=True, env={**os.environ, "PASS": str(r + 1)})
            losses = []
            t0 = time.perf_counter()
            for i in range(n):
                x = t[i : i + 1]
                losses.append(model(x, labels=x).loss.item())
            passes.append(time.perf_counter() - t0)
    secs = min(passes)
    print(json.dumps({
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "windows": n,
        "seqlen": a.seqlen,
        "tokens": n * a.seqlen,
        "window_nll": losses,
        "perplexity": math.exp(sum(losses) / n),
        "seconds": secs,
        "pass_seconds": passes,
        "tokens_per_second": n * a.seqlen / secs,
    }))


if __name__ == "__main__":
    main()
