#!/usr/bin/env bash
# The SmolLM2-135M table of the main-job issue: WikiText-2 perplexity and
# total relative reconstruction error for dense, Wanda/none and Wanda/optima
# at 50% unstructured and 2:4, every row with the same calibration windows.
#
#   bench/smollm2/run.sh OPTIMA MODEL DATA OUT NSAMPLES MAXWIN ROW...
#
# OPTIMA is the optima binary, MODEL the SmolLM2 GGUF (scripts/get-model.sh),
# DATA the data directory (../shared/data), OUT a directory for results,
# NSAMPLES calibration windows of 2048 tokens (seed 0), MAXWIN the WikiText-2
# windows of 2048 tokens to score (0: all 148), ROW one of dense, wanda50-none,
# wanda50-optima, wanda24-none, wanda24-optima, and for SELECTOR in sgpt
# (SparseGPT), thanos, admm: SELECTOR50-own, SELECTOR50-optima,
# SELECTOR24-own, SELECTOR24-optima (50% unstructured or 2:4; own keeps the
# selector's own weight update, optima re-fits its mask exactly; selector
# defaults: block size 128, damping 0.01, ADMM 20 iterations, damping 0.1).
# Extra prune flags may be given in $PRUNE_FLAGS (e.g. --threads 8). For each row it writes
# OUT/ROW.eval.json (optima eval --json) and OUT/ROW.report.json (the prune
# report). With $ZEROSHOT_TASKS set (a comma list for optima eval --task, e.g.
# arc_easy,piqa,mmlu or zeroshot), each row also runs
# optima eval --task $ZEROSHOT_TASKS [--limit $ZEROSHOT_LIMIT] --json on the
# row's model and writes OUT/ROW.zeroshot.json ($ZEROSHOT_LIMIT: items per
# task, per MMLU subject; unset or 0: all). With $ZEROSHOT_MMLU_LIMIT set,
# MMLU runs on its own with that per-subject limit into
# OUT/ROW.zeroshot-mmlu.json (MMLU has 57 subjects, so one limit for all six
# tasks makes it dominate the time), and the other tasks (zeroshot: the
# other five) into ROW.zeroshot.json. With $ZEROSHOT_SAMPLES set to 1, each
# zero-shot eval also writes its per-document results (optima eval
# --log-samples) to ROW.zeroshot.samples.jsonl.gz and
# ROW.zeroshot-mmlu.samples.jsonl.gz, from which bench/smollm2/table -paired
# computes paired differences between rows. A row's result files are replaced only
# when its commands succeed, and a row's zero-shot files are then exactly the
# ones this run wrote. Rows are checked before any work. $EVAL_FLAGS go to every optima eval
# (e.g. --device cuda --threads 4). bench/smollm2/table renders them
# as a Markdown table (with an acc column per task when the zeroshot files
# exist).
set -euo pipefail
if [ $# -lt 7 ]; then
  echo "usage: $0 OPTIMA MODEL DATA OUT NSAMPLES MAXWIN ROW..." >&2; exit 2
fi
optima=$1 model=$2 data=$3 out=$4 nsamples=$5 maxwin=$6
shift 6
# Every row is checked before any work, so that a typo in the last row does
# not stop the run after hours of the others.
for row in "$@"; do
  case $row in
    dense|wanda50-none|wanda50-optima|wanda24-none|wanda24-optima) ;;
    sgpt50-own|sgpt50-optima|sgpt24-own|sgpt24-optima) ;;
    thanos50-own|thanos50-optima|thanos24-own|thanos24-optima) ;;
    admm50-own|admm50-optima|admm24-own|admm24-optima) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
# Each result is written to FILE.tmp and renamed when its commands succeed:
# a failed command leaves the previous FILE as it was and no .tmp behind.
tmps=()
trap 'rm -f ${tmps[@]+"${tmps[@]}"}' EXIT
# into FILE CMD...: CMD's stdout into FILE.tmp (commit renames it).
into() {
  local file=$1; shift
  tmps+=("$file.tmp")
  "$@" > "$file.tmp"
}
# commit FILE...: renames each FILE.tmp to FILE.
commit() {
  local f
  for f in "$@"; do mv "$f.tmp" "$f"; done
  tmps=()
}
# fail ROW STEP LOG: says which step of ROW failed and shows the end of its log.
fail() {
  echo "$1: $2 failed; the end of $3:" >&2
  tail -n 5 "$3" >&2
  exit 1
}
for row in "$@"; do
  case $row in
    dense) target=$model ;;
    wanda50-none)   args=(--method wanda --sparsity 0.5 --update none) ;;
    wanda50-optima) args=(--method wanda --sparsity 0.5 --update optima) ;;
    wanda24-none)   args=(--method wanda --pattern 2:4 --update none) ;;
    wanda24-optima) args=(--method wanda --pattern 2:4 --update optima) ;;
    sgpt50-*|thanos50-*|admm50-*|sgpt24-*|thanos24-*|admm24-*)
      sel=${row%%[0-9]*}; [ "$sel" = sgpt ] && sel=sparsegpt
      pat=(--sparsity 0.5); case $row in *24-*) pat=(--pattern 2:4) ;; esac
      args=(--method "$sel" "${pat[@]}" --update "${row##*-}") ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  if [ "$row" != dense ]; then
    target=$out/$row.model
    "$optima" prune --model "$model" "${args[@]}" --calib "$data/c4/c4_sample.jsonl" \
      --nsamples "$nsamples" --seqlen 2048 --seed 0 --out "$target" --no-progress ${PRUNE_FLAGS:-} 2>"$out/$row.prune.log" ||
      fail "$row" prune "$out/$row.prune.log"
    cp "$target/report.json" "$out/$row.report.json"
    # Zero-shot results of an earlier prune of this row belong to another model.
    rm -f "$out/$row".zeroshot{,-mmlu}{.json,.samples.jsonl.gz}
  fi
  mid=$(date +%s)
  into "$out/$row.eval.json" "$optima" eval --model "$target" --task wikitext2 --seqlen 2048 --max-windows "$maxwin" \
    --data-dir "$data" --json --no-progress ${EVAL_FLAGS:-}
  commit "$out/$row.eval.json"
  end=$(date +%s)
  zs=
  if [ -n "${ZEROSHOT_TASKS:-}" ]; then
    tasks=$ZEROSHOT_TASKS
    files=()
    # samples NAME sets sf to the --log-samples flag for ROW.NAME.samples.jsonl.gz
    # when $ZEROSHOT_SAMPLES is 1 (written under a temporary name, renamed
    # with the JSON files), else to nothing.
    samples() {
      sf=()
      [ "${ZEROSHOT_SAMPLES:-}" = 1 ] || return 0
      tmps+=("$out/$row.$1.samples.tmp.jsonl.gz")
      sf=(--log-samples "$out/$row.$1.samples.tmp.jsonl.gz")
    }
    if [ -n "${ZEROSHOT_MMLU_LIMIT:-}" ]; then
      # MMLU on its own, with its own per-subject limit, into ROW.zeroshot-mmlu.json;
      # the other tasks (zeroshot expanded to its six tasks, less MMLU) into ROW.zeroshot.json.
      tasks=$(echo ",${tasks// /}," | sed 's/,zeroshot,/,piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu,/; s/,mmlu,/,/g; s/^,//; s/,$//')
      samples zeroshot-mmlu
      into "$out/$row.zeroshot-mmlu.json" "$optima" eval --model "$target" --task mmlu --limit "$ZEROSHOT_MMLU_LIMIT" \
        --data-dir "$data" --json --no-progress ${sf[@]+"${sf[@]}"} ${EVAL_FLAGS:-}
      files+=("$out/$row.zeroshot-mmlu.json")
    fi
    if [ -n "$tasks" ]; then
      samples zeroshot
      into "$out/$row.zeroshot.json" "$optima" eval --model "$target" --task "$tasks" --limit "${ZEROSHOT_LIMIT:-0}" \
        --data-dir "$data" --json --no-progress ${sf[@]+"${sf[@]}"} ${EVAL_FLAGS:-}
      files+=("$out/$row.zeroshot.json")
    fi
    # The row's zero-shot files are now exactly this run's: a file left
    # from an earlier run (another model, limit or task list) would be
    # merged into the row by bench/smollm2/table.
    rm -f "$out/$row".zeroshot{,-mmlu}{.json,.samples.jsonl.gz}
    if [ "${ZEROSHOT_SAMPLES:-}" = 1 ]; then
      for f in "${files[@]}"; do mv "${f%.json}.samples.tmp.jsonl.gz" "${f%.json}.samples.jsonl.gz"; done
    fi
    commit "${files[@]}"
    zs=" zero-shot $(($(date +%s)-end))s $(cat "${files[@]}" | grep '"average_acc"' | tr -s ' \n' ' ')"
  fi
  echo "$row: prune $((mid-start))s eval $((end-mid))s $(grep '"perplexity"' "$out/$row.eval.json")$zs"
done
