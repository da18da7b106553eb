#!/usr/bin/env bash
# lm-evaluation-harness 0.4.13 reference for SmolLM2-135M (dense) on the FULL
# local zero-shot data (every document of piqa, arc_easy, arc_challenge,
# winogrande, openbookqa and of all 57 MMLU subjects), on a CUDA GPU, through
# zeroshot_harness.py (same prompts, task configs and MMLU aggregation as the
# committed 200-document fixture; float32, TF32 off).
#
# It installs the wheels the device lacks (lm_eval and what it imports:
# datasets, dill, multiprocess, gguf for transformers' GGUF loading, and
# lm_eval's other declared needs) into $SITE with pip, offline, and runs with
# the device's own torch / transformers / numpy / pyarrow / pandas.
#
# The wheels: tools/oracle/get-harness-wheels.sh .carry/i5h (here, before the
# device call; .carry/ is ignored by git).
#
# Command (repository root on the H200 device, the wheels carried in
# .carry/i5h, the model and the data directory already under /root/keep):
#
#     bash tools/oracle/zeroshot_harness_device.sh
#
# writes to $OUT (or $OUTDIR):
#     zeroshot_harness_full.json.gz       per task acc/acc_norm/n and per
#                                         document gold + each choice's
#                                         log-likelihood (the schema of
#                                         stages/eval/testdata/smollm2_zeroshot_harness.json)
#     zeroshot_harness_full_summary.json  the same without the documents
#     zeroshot_harness.log                versions and the harness's log
#
# Done on 2026-11-30 on the 2×H200 machine (32 cores), GPU 1, with the
# defaults (limit 0, all 57 subjects, batch 64): 218 s wall including the
# offline install, 193.4 s of scoring (the "seconds" it records) for 1838
# piqa, 2376 arc_easy, 1172 arc_challenge, 1267 winogrande, 500 openbookqa
# and 14042 MMLU documents. Its zeroshot_harness_full.json.gz is committed
# as stages/eval/testdata/smollm2_zeroshot_harness_full.json.gz (model_sha256
# b179c952…, lm_eval 0.4.13, torch 2.11.0+cu130, transformers 5.17.0);
# TestSmolLM2ZeroShotFull compares it with optima's run (every task +0.00
# points, average acc 38.75 on both sides) and TestSmolLM2ZeroShot scores a
# sample of its documents with today's code.
#
# Our side runs beside it on the device's CPU (zeroshot_optima_device.sh);
# one device command for both, then one to collect optima's result:
#
#     bash tools/oracle/zeroshot_optima_device.sh start && bash tools/oracle/zeroshot_harness_device.sh
#     bash tools/oracle/zeroshot_optima_device.sh wait 570     # next command, within 30 s
#
# Settings (environment): WHEELS (.carry/i5h), SITE (/tmp/site),
# GGUF (/root/keep/m.gguf), DATA (/root/keep/data), DEVICE (cuda),
# BATCH (64), LIMIT (0: all documents), SUBJECTS (all), PY (python3),
# OUTDIR ($OUT).
#
# Local simulation (CPU, a python3.12 venv holding only the device's
# preinstalled packages at the device's versions; see the report of issue 5):
#
#     PY=/tmp/i5sim/bin/python DEVICE=cpu BATCH=8 LIMIT=3 SITE=/tmp/i5site \
#         GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf DATA=/work/shared/data \
#         OUTDIR=/tmp/i5simout WHEELS=/work/main/.carry/i5h bash tools/oracle/zeroshot_harness_device.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
WHEELS=${WHEELS:-.carry/i5h}
SITE=${SITE:-/tmp/site}
GGUF=${GGUF:-/root/keep/m.gguf}
DATA=${DATA:-/root/keep/data}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-64}
LIMIT=${LIMIT:-0}
SUBJECTS=${SUBJECTS:-all}
PY=${PY:-python3}
OUTDIR=${OUTDIR:-${OUT:?set OUT or OUTDIR}}

for f in "$GGUF" "$DATA/zeroshot/piqa_valid.jsonl" "$DATA/mmlu/test/anatomy_test.csv"; do
	[ -e "$f" ] || { echo "zeroshot_harness_device.sh: missing $f" >&2; exit 2; }
done
compgen -G "$WHEELS/lm_eval-*.whl" >/dev/null || { echo "zeroshot_harness_device.sh: no lm_eval wheel in $WHEELS" >&2; exit 2; }
mkdir -p "$OUTDIR"
log=$OUTDIR/zeroshot_harness.log

"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
# Nothing may reach the network; a fresh cache so no earlier run's datasets are reused.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_HOME=${HF_HOME:-$(mktemp -d /tmp/i5hf.XXXXXX)}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=${TQDM_MININTERVAL:-10} TOKENIZERS_PARALLELISM=false

"$PY" - <<'EOF' 2>&1 | tee "$log"
import importlib.metadata as md, os, sys
print("python", sys.version.split()[0], sys.executable)
for d in ["torch", "transformers", "tokenizers", "accelerate", "huggingface-hub", "numpy", "pyarrow", "pandas",
          "fsspec", "lm_eval", "datasets", "dill", "multiprocess", "gguf", "evaluate"]:
    try:
        print("%-16s %-14s %s" % (d, md.version(d), md.distribution(d).locate_file("")))
    except md.PackageNotFoundError:
        print("%-16s missing" % d)
import torch, lm_eval, datasets, gguf  # noqa: F401  fail here, early, on a broken environment
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

start=$(date +%s)
"$PY" "$here/zeroshot_harness.py" --data "$DATA" --gguf "$GGUF" --limit "$LIMIT" --mmlu-subjects "$SUBJECTS" \
	--device "$DEVICE" --batch-size "$BATCH" \
	--out "$OUTDIR/zeroshot_harness_full.json.gz" --summary "$OUTDIR/zeroshot_harness_full_summary.json" 2>&1 | tee -a "$log"
echo "zeroshot_harness_device.sh: $(( $(date +%s) - start )) s" | tee -a "$log"
