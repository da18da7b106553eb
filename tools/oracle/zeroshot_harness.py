#!/usr/bin/env python3
"""lm-evaluation-harness reference accuracies for SmolLM2-135M (dense) on the
local zero-shot data, for stages/eval's TestSmolLM2ZeroShot.

Command (from the repository root; lm-eval 0.4.13 in a venv that sees the
system torch 2.15 / transformers 5.24; CPU, float32; it took 63 minutes on 2 cores shared at load ~13):

    python3 -m venv --system-site-packages /tmp/i5venv && /tmp/i5venv/bin/pip install lm-eval==0.4.13
    nice -n 10 /tmp/i5venv/bin/python tools/oracle/zeroshot_harness.py \
        --data /work/shared/data --gguf /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --limit 200 --mmlu-subjects abstract_algebra,anatomy,astronomy,business_ethics \
        --out stages/eval/testdata/smollm2_zeroshot_harness.json

The harness's own task configs read the Hugging Face hub, which is not
reachable here, so this script writes local task configs that copy the
harness's prompts (lm_eval/tasks/{arc,piqa,openbookqa,winogrande,mmlu/default})
and read the files of the data directory (ARC with its 4-choice
normalisation, PIQA's original files with their labels, MMLU's CSVs parsed by
Python's csv module). The model runs through HFLM with transformers' GGUF
loading (pretrained=<dir>, gguf_file=<name>): weights dequantized to float32,
the tokenizer converted from the GGUF. --limit is the harness's --limit: the
first N documents of each task and of each MMLU subject. The MMLU group
aggregates its subjects weighted by size, as the harness's mmlu group does.

The output holds, per task, the harness's acc (and acc_norm where the harness
reports it), the number of documents, and per document the loglikelihood of
each choice (the harness's resps) and the gold index; one document a line,
gzip-compressed when --out ends in .gz. --summary writes the same without the
per-document lines.

Full data on a CUDA device (every document, all 57 MMLU subjects; what
zeroshot_harness_device.sh runs on the H200, float32 with TF32 off):

    python3 tools/oracle/zeroshot_harness.py --data DATA --gguf MODEL.gguf \
        --limit 0 --mmlu-subjects all --device cuda --batch-size 64 \
        --out full.json.gz --summary summary.json
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import lm_eval
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zeroshot_tasks import mmlu_subjects, write_tasks  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def write_json(out, path):
    """Writes out as compact JSON with one per-document item a line (the
    style of stages/eval/testdata/smollm2_zeroshot_harness.json), gzipped
    when path ends in .gz, through a temporary name."""
    parts = []
    head = dict(out, tasks={})
    hs = json.dumps(head, separators=(",", ":"))
    parts.append(hs[:-len('{}}')] + "{")
    for i, (t, e) in enumerate(out["tasks"].items()):
        e = dict(e)
        items = e.pop("items", None)
        es = json.dumps(e, separators=(",", ":"))
        parts.append(("," if i else "") + json.dumps(t) + ":" + es[:-1])
        if items is not None:
            parts.append(',"items":[\n' + ",\n".join(json.dumps(x, separators=(",", ":")) for x in items) + "]")
        parts.append("}")
    parts.append("}}\n")
    text = "".join(parts)
    json.loads(text)  # the writer's own check
    tmp = path + ".tmp"
    if path.endswith(".gz"):
        with gzip.open(tmp, "wt", compresslevel=9) as f:
            f.write(text)
    else:
        with open(tmp, "w") as f:
            f.write(text)
    os.replace(tmp, path)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--mmlu-subjects", default="abstract_algebra,anatomy,astronomy,business_ethics")
    ap.add_argument("--tasks", default="piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="torch device for HFLM: cpu, cuda, cuda:0, ...")
    ap.add_argument("--out", required=True, help="JSON with per-document log-likelihoods (.gz: gzipped)")
    ap.add_argument("--summary", default="", help="also write the accuracies alone (no per-document items) here")
    a = ap.parse_args()
    limit = a.limit if a.limit > 0 else None
    subjects = mmlu_subjects(a.data) if a.mmlu_subjects == "all" else [s for s in a.mmlu_subjects.split(",") if s]
    tmp = write_tasks(a.data, subjects)
    want = a.tasks.split(",")
    tasks = ["optima_" + t for t in want]
    import torch
    # float32 as on the CPU: no TF32 in matrix products or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    start = time.time()
    lm = HFLM(pretrained=os.path.dirname(os.path.abspath(a.gguf)), gguf_file=os.path.basename(a.gguf),
              dtype="float32", device=a.device, batch_size=a.batch_size)
    res = lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=True,
                                  task_manager=TaskManager(include_path=tmp), bootstrap_iters=0)
    seconds = time.time() - start
    import transformers
    out = {"command": " ".join(sys.argv), "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13",
           "model": os.path.basename(a.gguf), "model_sha256": sha256(a.gguf), "limit": a.limit, "mmlu_subjects": subjects,
           "device": a.device if a.device == "cpu" else "%s (%s)" % (a.device, torch.cuda.get_device_name(a.device)),
           "batch_size": a.batch_size, "torch": torch.__version__, "transformers": transformers.__version__,
           "seconds": round(seconds, 1), "tasks": {}}

    def items(task):
        docs = sorted(res["samples"][task], key=lambda s: s["doc_id"])
        return [{"doc_id": d["doc_id"], "gold": next(d["doc"][k] for k in ("gold", "label", "answer") if k in d["doc"]),
                 "lls": [float(r[0][0]) for r in d["resps"]]} for d in docs]

    for t in want:
        name = "optima_" + t
        if t == "mmlu":
            g = res["results"][name]
            subs = {}
            all_items = []
            for s in subjects:
                r = res["results"]["optima_mmlu_" + s]
                it = items("optima_mmlu_" + s)
                for x in it:
                    x["subject"] = s
                all_items += it
                subs[s] = {"acc": r["acc,none"], "n": len(it)}
            out["tasks"][t] = {"acc": g["acc,none"], "n": len(all_items), "subjects": subs, "items": all_items}
            continue
        r = res["results"][name]
        e = {"acc": r["acc,none"], "n": len(res["samples"][name]), "items": items(name)}
        if "acc_norm,none" in r:
            e["acc_norm"] = r["acc_norm,none"]
        out["tasks"][t] = e
    write_json(out, a.out)
    if a.summary:
        summ = dict(out, tasks={t: {k: v for k, v in e.items() if k != "items"} for t, e in out["tasks"].items()})
        write_json(summ, a.summary)
    for t, e in out["tasks"].items():
        print(t, e["n"], e["acc"], e.get("acc_norm"))


if __name__ == "__main__":
    main()
