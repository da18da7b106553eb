#!/usr/bin/env python3
"""MMLU's group acc and acc_stderr as lm-evaluation-harness 0.4.13 reports
them, computed by the harness's own metric functions from SmolLM2-135M's
per-subject results, for stages/eval's TestMMLUGroupStderrHarness; and the
57-subject category map of the harness's MMLU yaml files.

Command (from the repository root; lm_eval 0.4.13's wheel, no dependencies
beyond the system numpy and PyYAML, none of the harness's model code runs):

    pip install -q --no-deps --target /tmp/lmeval-site /work/main/.carry/i5h/lm_eval-0.4.13-py3-none-any.whl
    python3 tools/oracle/mmlu_group_stderr.py --lm-eval-site /tmp/lmeval-site \
        --fixture stages/eval/testdata/smollm2_zeroshot_harness_full.json.gz \
        --categories stages/eval/mmlu_categories.json \
        --out stages/eval/testdata/mmlu_group_stderr_smollm2.json

What the harness does (lm_eval/api/group.py Group.aggregate, 0.4.13): a
group's metric is aggregate_subtask_metrics over its LEAF tasks
(get_all_tasks(recursive=True)), not over its subgroups' results, and with
weight_by_size its stderr is pooled_sample_stderr(leaf stderrs, leaf sizes)
(lm_eval/api/metrics.py). So the mmlu group pools the 57 subjects directly;
the four categories (mmlu_stem, mmlu_other, mmlu_social_sciences,
mmlu_humanities, in the order lm_eval/tasks/mmlu/default/_mmlu.yaml lists
them) pool their own subjects. A leaf task's acc is metrics.mean of its 0/1
scores and its acc_stderr metrics.mean_stderr of them. Leaves are ordered as
the harness builds them: categories in _mmlu.yaml's order, each category's
tag members sorted by task name (lm_eval/tasks/_factory.py). The per-document
0/1 scores come from the fixture's log-likelihoods and golds (numpy.argmax,
the harness's multiple-choice rule); the script checks that each subject's
acc equals the one the harness reported there.
"""
import argparse
import glob
import gzip
import json
import os
import sys

import numpy as np
import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-eval-site", required=True, help="directory holding the lm_eval package (pip --target)")
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--categories", required=True, help="output: subject -> category JSON")
    ap.add_argument("--out", required=True, help="output: golden JSON")
    a = ap.parse_args()

    sys.path.insert(0, a.lm_eval_site)
    # Only the metric functions. lm_eval.api.metrics imports sacrebleu at
    # its top for its BLEU/chrF/TER metrics, none of which runs here; when
    # sacrebleu is not installed an empty module stands in for it.
    try:
        import sacrebleu  # noqa: F401
    except ImportError:
        import types
        sys.modules["sacrebleu"] = types.ModuleType("sacrebleu")
    from lm_eval.api import metrics as M

    meta = glob.glob(os.path.join(a.lm_eval_site, "lm_eval-*.dist-info", "METADATA"))[0]
    version = open(meta).read().split("\nVersion: ")[1].split("\n")[0]
    ydir = os.path.join(a.lm_eval_site, "lm_eval", "tasks", "mmlu", "default")

    # The group structure and the category of each subject, from the yaml.
    top = yaml.safe_load(open(os.path.join(ydir, "_mmlu.yaml")))
    assert top["group"] == "mmlu" and top["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}], top
    groups = top["task"]  # mmlu_stem, mmlu_other, ...
    tag_of_group = {}
    for g in groups:
        cfg = yaml.safe_load(open(os.path.join(ydir, "_" + g + ".yaml")))
        assert cfg["group"] == g and cfg["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}], cfg
        assert len(cfg["task"]) == 1, cfg
        tag_of_group[cfg["task"][0]] = g
    category = {}
    for p in sorted(glob.glob(os.path.join(ydir, "mmlu_*.yaml"))):
        cfg = yaml.safe_load(open(p))
        subject = cfg["dataset_name"]
        assert cfg["task"] == "mmlu_" + subject, p
        category[subject] = tag_of_group[cfg["tag"]][len("mmlu_"):]
    assert len(category) == 57, len(category)

    fx = json.load(gzip.open(a.fixture))
    mm = fx["tasks"]["mmlu"]
    scores = {}
    for it in mm["items"]:
        scores.setdefault(it["subject"], []).append(1.0 if int(np.argmax(it["lls"])) == it["gold"] else 0.0)
    assert sorted(scores) == sorted(category), "fixture subjects differ from the harness's"
    leaf = {}
    for s, xs in scores.items():
        acc = M.mean(xs)
        assert acc == mm["subjects"][s]["acc"] and len(xs) == mm["subjects"][s]["n"], s
        leaf[s] = {"acc": acc, "acc_stderr": M.mean_stderr(xs), "n": len(xs)}

    def aggregate(subjects):
        vals = [leaf[s]["acc"] for s in subjects]
        ses = [leaf[s]["acc_stderr"] for s in subjects]
        sizes = [leaf[s]["n"] for s in subjects]
        return {"acc": float(M.aggregate_subtask_metrics(vals, sizes, True)),
                "acc_stderr": float(M.pooled_sample_stderr(ses, sizes)),
                "n": sum(sizes), "subjects": len(subjects)}

    order = []
    out_groups = {}
    for g in groups:
        members = sorted((s for s in category if "mmlu_" + category[s] == g), key=lambda s: "mmlu_" + s)
        order += members
        out_groups[g[len("mmlu_"):]] = aggregate(members)
    out_groups["mmlu"] = aggregate(order)
    all_items = [x for s in sorted(scores) for x in scores[s]]
    golden = {
        "command": " ".join(["tools/oracle/mmlu_group_stderr.py"] + sys.argv[1:]),
        "lm_eval_version": version,
        "source": "lm_eval/api/group.py Group.aggregate, lm_eval/api/metrics.py pooled_sample_stderr, aggregate_subtask_metrics, mean_stderr",
        "fixture": os.path.basename(a.fixture),
        "leaf_order": order,
        "subjects": leaf,
        "groups": out_groups,
        "item_pooled_acc_stderr": M.mean_stderr(all_items),
    }
    with open(a.out, "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")
    cats = {
        "source": "lm-evaluation-harness %s lm_eval/tasks/mmlu/default/mmlu_<subject>.yaml: the tag field (mmlu_<category>_tasks), "
                  "which _mmlu_<category>.yaml groups; categories in the order of _mmlu.yaml's task list" % version,
        "order": [g[len("mmlu_"):] for g in groups],
        "categories": category,
    }
    with open(a.categories, "w") as f:
        json.dump(cats, f, indent=1, sort_keys=True)
        f.write("\n")
    for g, r in out_groups.items():
        print("%-16s n %5d acc %.17g acc_stderr %.17g" % (g, r["n"], r["acc"], r["acc_stderr"]))
    print("item-pooled acc_stderr %.17g" % golden["item_pooled_acc_stderr"])


if __name__ == "__main__":
    main()
