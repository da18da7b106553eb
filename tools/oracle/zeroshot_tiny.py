#!/usr/bin/env python3
"""Per-request log-likelihoods of lm-evaluation-harness (HFLM over
transformers) on a tiny random Llama, for stages/eval's TestZeroShotTinyGolden.

Command (from the repository root; lm-eval 0.4.13 as in zeroshot_harness.py;
CPU, float32, seconds):

    go test ./stages/eval -run TestZeroShotTinyGolden -args -write-tiny /tmp/zs_tiny && \
    /tmp/i5venv/bin/python tools/oracle/zeroshot_tiny.py --model /tmp/zs_tiny \
        --data /work/shared/data --out stages/eval/testdata/zeroshot_tiny.json

The Go test writes the tiny model (internal/tinymodel, the options are in the
test) as a Hugging Face directory with its tokenizer.json; the harness loads it
with HFLM(pretrained=DIR). For the first --limit documents of each task (the
local task configs of zeroshot_tasks.py; MMLU: two subjects) the fixture holds
each request's (context, continuation) strings as the harness built them, the
token ids of _encode_pair, and the harness's (loglikelihood, is_greedy).
Extra requests cover the tokenization rules: trailing whitespace moved to the
continuation, an empty context, a token straddling the boundary, non-ASCII
text. Each log-likelihood is also recomputed with a plain transformers
forward pass and must agree to 1e-4.
"""
import argparse
import json
import os
import sys

import torch
import lm_eval
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zeroshot_tasks import write_tasks  # noqa: E402

EXTRA = [
    ("Question: Which is heavier?\nAnswer: ", "the stone"),
    ("", "The tiny model reads the text."),
    ("The end of the text is not the end of the st", "ory, and the story"),
    ("Ünïcode café:\n\n", "naïve façade"),
    ("hello, world", "!"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--mmlu-subjects", default="abstract_algebra,world_religions")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    subjects = a.mmlu_subjects.split(",")
    tmp = write_tasks(a.data, subjects)
    names = ["piqa", "arc_easy", "arc_challenge", "winogrande", "openbookqa", "mmlu"]
    lm = HFLM(pretrained=a.model, dtype="float32", device="cpu", batch_size=4)
    res = lm_eval.simple_evaluate(model=lm, tasks=["optima_" + n for n in names], limit=a.limit, log_samples=True,
                                  task_manager=TaskManager(include_path=tmp), bootstrap_iters=0)
    model = lm.model

    def plain(ctx_ids, cont_ids):
        ids = torch.tensor([ctx_ids + cont_ids[:-1]])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0].double(), -1)
        n = len(ctx_ids)
        return sum(lp[n - 1 + j, t].item() for j, t in enumerate(cont_ids))

    def req(ctx, cont, ll, greedy):
        if ctx == "":
            c = lm.tok_encode(cont, add_special_tokens=False)
            ci, co = ([lm.prefix_token_id], c) if lm.prefix_token_id != c[0] else (c[:1], c[1:])
        else:
            ci, co = lm._encode_pair(ctx, cont)
        p = plain(ci, co)
        assert abs(p - ll) < 1e-4 * max(1, abs(ll)), (ctx, cont, p, ll)
        return {"context": ctx, "continuation": cont, "context_ids": ci, "continuation_ids": co,
                "loglik": float(ll), "greedy": bool(greedy)}

    tasks = {}
    for n in names:
        subs = ["optima_mmlu_" + s for s in subjects] if n == "mmlu" else ["optima_" + n]
        items = []
        for t in subs:
            for d in sorted(res["samples"][t], key=lambda s: s["doc_id"]):
                items.append({"doc_id": d["doc_id"], "requests": [
                    req(arg[0], arg[1], r[0][0], r[0][1]) for arg, r in zip(d["arguments"], d["resps"])]})
        tasks[n] = items
    extra = lm.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=x, idx=0) for x in EXTRA])
    out = {"command": " ".join(sys.argv), "limit": a.limit, "mmlu_subjects": subjects,
           "tokenizer": {"bos": lm.tokenizer.bos_token_id, "eos": lm.tokenizer.eos_token_id,
                         "prefix_token_id": lm.prefix_token_id},
           "tasks": tasks, "extra": [req(x[0], x[1], r[0], r[1]) for x, r in zip(EXTRA, extra)]}
    with open(a.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(a.out + ".tmp", a.out)
    print("wrote", a.out, {n: len(v) for n, v in tasks.items()})


if __name__ == "__main__":
    main()
