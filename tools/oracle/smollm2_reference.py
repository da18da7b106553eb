"""Reference WikiText-2 perplexity of a causal LM with Hugging Face transformers.

Golden values for optima's eval (DESIGN.md section 5). The protocol is the one of the
pruning papers (SparseGPT, Wanda, OPTIMA): rows of wiki.test.raw (HF rule: lines keep their newline, blank lines are "") joined with "\n\n",
tokenized once, cut into non-overlapping windows of --seqlen tokens, tail dropped,
loss per window = mean NLL of the seqlen-1 shifted labels, ppl = exp(mean window loss).

Commands that made the committed fixtures:
  # dense SmolLM2-135M from its GGUF (run on the device machine, float32, TF32 off):
  python3 tools/oracle/smollm2_reference.py --gguf /path/SmolLM2-135M-Instruct.Q4_1.gguf \
      --data ../shared/data --seqlen 2048 --out stages/eval/testdata/smollm2_wikitext2_dense.json
  # a model directory written by optima (does it load, and is its perplexity optima's?):
  python3 tools/oracle/smollm2_reference.py --model-dir OUT --max-windows 1   # OUT: optima prune --out
"""
import argparse, hashlib, json, math, os, sys, time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", help="GGUF file (model and tokenizer)")
    ap.add_argument("--model-dir", help="Hugging Face model directory (model and tokenizer)")
    ap.add_argument("--tokenizer-gguf", help="take the tokenizer from this GGUF instead")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    if a.gguf:
        d, f = os.path.split(os.path.abspath(a.gguf))
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(a.model_dir, torch_dtype=torch.float32)
        if a.tokenizer_gguf:
            d, f = os.path.split(os.path.abspath(a.tokenizer_gguf))
            tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        else:
            tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = model.to(dev).eval()

    # Rows as Hugging Face's wikitext loader yields them: each line with its
    # newline, blank lines as "" (with GPT-2's tokenizer this stream is the
    # 287,644 tokens the data README quotes).
    with open(os.path.join(a.data, "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8") as fh:
        rows = [r if r.strip() else "" for r in fh]
    text = "\n\n".join(rows)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n = len(ids) // a.seqlen
    if a.max_windows:
        n = min(n, a.max_windows)
    t = torch.tensor(ids[: n * a.seqlen], dtype=torch.long).view(n, a.seqlen)
    losses = []
    t0 = time.time()
    with torch.no_grad():
        for i in range(n):
            x = t[i : i + 1].to(dev)
            logits = model(x).logits.float()
            lp = torch.log_softmax(logits[0, :-1].double(), dim=-1)
            nll = -lp.gather(1, x[0, 1:, None]).mean().item()
            losses.append(nll)
            print(f"window {i+1}/{n} loss {nll:.6f} ({time.time()-t0:.1f}s)", file=sys.stderr)
    res = {
        "model": a.gguf or a.model_dir,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "device": dev,
        "seqlen": a.seqlen,
        "tokens_in_stream": len(ids),
        "stream_ids_sha256": hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest(),
        "windows": n,
        "window_loss": losses,
        "perplexity": math.exp(sum(losses) / n),
    }
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "window_loss"}))


if __name__ == "__main__":
    main()
