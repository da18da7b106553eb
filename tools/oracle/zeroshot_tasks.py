"""Local lm-evaluation-harness task configs for the zero-shot data directory,
shared by zeroshot_harness.py and zeroshot_tiny.py (not run on its own).

The harness's own configs (lm_eval/tasks/{arc,piqa,openbookqa,winogrande,
mmlu/default}) read the Hugging Face hub, which is not reachable here; these
copy their prompts and read the data directory's files instead (ARC with its
4-choice normalisation, PIQA's original files joined with their labels, MMLU's
CSVs parsed by Python's csv module). Tasks are named optima_<task>; the
optima_mmlu group aggregates its subjects weighted by size, as the harness's
mmlu group does.
"""
import csv
import json
import os
import tempfile

MC = "output_type: multiple_choice\ntest_split: test\n"
ACC = "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
ACCN = ACC + "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"


def data_files(path):
    return "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: %s\n" % json.dumps(path)


def mmlu_subjects(data):
    """Returns every MMLU subject of the data directory (mmlu/test/
    <subject>_test.csv), sorted, as the harness's mmlu group lists them."""
    d = os.path.join(data, "mmlu", "test")
    subs = sorted(f[:-len("_test.csv")] for f in os.listdir(d) if f.endswith("_test.csv"))
    if not subs:
        raise SystemExit("no MMLU subjects (*_test.csv) in %s" % d)
    return subs


def write_tasks(data, subjects):
    """Writes the task configs (and converted data) into a new temporary
    directory and returns it, for TaskManager(include_path=...)."""
    tmp = tempfile.mkdtemp(prefix="optima_zeroshot_")
    zs = os.path.join(data, "zeroshot")
    yamls = {}
    yamls["optima_arc_easy"] = data_files(os.path.join(zs, "arc_easy.jsonl")) + MC + \
        'doc_to_text: "{{query}}\\nAnswer:"\ndoc_to_target: gold\ndoc_to_choice: choices\n' + ACCN
    yamls["optima_arc_challenge"] = data_files(os.path.join(zs, "arc_challenge.jsonl")) + MC + \
        'doc_to_text: "{{query}}\\nAnswer:"\ndoc_to_target: gold\ndoc_to_choice: choices\n' + ACCN
    yamls["optima_openbookqa"] = data_files(os.path.join(zs, "openbook_qa.jsonl")) + MC + \
        "doc_to_text: query\ndoc_to_target: gold\ndoc_to_choice: choices\n" + ACCN
    # WinoGrande: doc_to_text gives the gold index (multiple_input), the
    # choices are the contexts and the target the shared continuation.
    yamls["optima_winogrande"] = data_files(os.path.join(zs, "winogrande.jsonl")) + MC + \
        "doc_to_text: gold\ndoc_to_target: continuation\ndoc_to_choice: context_options\n" + ACC
    # PIQA: join the original questions with their labels.
    piqa = os.path.join(tmp, "piqa.jsonl")
    with open(os.path.join(zs, "piqa_valid.jsonl")) as fq, open(os.path.join(zs, "piqa_valid-labels.lst")) as fl, \
            open(piqa, "w") as fo:
        qs = [json.loads(l) for l in fq if l.strip()]
        ls = [int(l) for l in fl if l.strip()]
        assert len(qs) == len(ls)
        for q, l in zip(qs, ls):
            fo.write(json.dumps({"goal": q["goal"], "sol1": q["sol1"], "sol2": q["sol2"], "label": l}) + "\n")
    yamls["optima_piqa"] = data_files(piqa) + MC + \
        'doc_to_text: "Question: {{goal}}\\nAnswer:"\ndoc_to_target: label\ndoc_to_choice: "{{[sol1, sol2]}}"\n' + ACCN
    for s in subjects:
        p = os.path.join(tmp, "mmlu_%s.jsonl" % s)
        with open(os.path.join(data, "mmlu", "test", s + "_test.csv"), newline="") as f, open(p, "w") as fo:
            r = csv.reader(f)
            head = next(r)
            assert head == ["question", "choice0", "choice1", "choice2", "choice3", "answer"], head
            for row in r:
                fo.write(json.dumps({"question": row[0], "choices": row[1:5], "answer": int(row[5])}) + "\n")
        desc = "The following are multiple choice questions (with answers) about %s.\n\n" % " ".join(s.split("_"))
        yamls["optima_mmlu_" + s] = data_files(p) + MC + "description: %s\n" % json.dumps(desc) + \
            'doc_to_text: "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:"\n' + \
            'doc_to_choice: ["A", "B", "C", "D"]\ndoc_to_target: answer\n' + ACC
    for name, body in yamls.items():
        with open(os.path.join(tmp, name + ".yaml"), "w") as f:
            f.write("task: %s\n" % name + body + "metadata:\n  version: 1.0\n")
    with open(os.path.join(tmp, "optima_mmlu.yaml"), "w") as f:
        f.write("group: optima_mmlu\ntask:\n" + "".join("  - optima_mmlu_%s\n" % s for s in subjects) +
                "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: True\nmetadata:\n  version: 2\n")

    return tmp
