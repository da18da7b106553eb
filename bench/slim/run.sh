#!/usr/bin/env bash
# The SmolLM2-135M table of issue 8: 2:4 sparsity and 4-bit weights, with
# Wanda (mask only), Wanda + OPTIMA (exact row re-fit) and Wanda + OPTIMA +
# SLiM-LoRA (rank 0.1, kept separate as a PEFT adapter and merged by eval),
# each with AbsMax and SLiM-Quant: WikiText-2 perplexity, the report's total
# errors after pruning/quantization/adapter, and the compressed memory. Every
# row uses the same calibration windows (same --calib, --nsamples, --seqlen,
# --seed).
#
#   bench/slim/run.sh OPTIMA MODEL DATA OUT NSAMPLES SEQLEN MAXWIN [ROW...]
#
# ROW is dense (the unpruned model, eval only), or one of wanda-absmax, wanda-slim, optima-absmax, optima-slim,
# lora-absmax, lora-slim (default: all six), or wandalora-absmax,
# wandalora-slim (Wanda + SLiM-LoRA without the OPTIMA update). Extra prune flags may be given in
# $PRUNE_FLAGS. It writes OUT/ROW.eval.json (optima eval --json) and
# OUT/ROW.report.json; bench/slim/table renders them as a Markdown table.
#
# Full run (the issue's table, results/full; README.md has the exact commands):
#   CGO_ENABLED=0 go build -o /tmp/optima ./cmd/optima
#   bench/slim/run.sh /tmp/optima /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
#     /work/shared/data OUT 32 2048 32
# Group rows: PRUNE_FLAGS="--group-size 64" into another OUT, then rename
# ROW.* to g64-ROW.* in results/full (bench/slim/table's gN-ROW rows).
# Small run recorded in README.md (2 shared cores, under nice):
#   nice -n 10 bench/slim/run.sh /tmp/optima /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
#     /work/shared/data bench/slim/results/small 4 512 4
set -euo pipefail
if [ $# -lt 7 ]; then
  echo "usage: $0 OPTIMA MODEL DATA OUT NSAMPLES SEQLEN MAXWIN [ROW...]" >&2; exit 2
fi
optima=$1 model=$2 data=$3 out=$4 nsamples=$5 seqlen=$6 maxwin=$7
shift 7
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(wanda-absmax wanda-slim optima-absmax optima-slim lora-absmax lora-slim)
# Every row is checked before any work.
for row in "${rows[@]}"; do
  case $row in
    dense|wanda-absmax|wanda-slim|wanda-gptq|optima-absmax|optima-slim|optima-gptq) ;;
    lora-absmax|lora-slim|lora-gptq|wandalora-absmax|wandalora-slim|wandalora-gptq) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
# ROW.eval.json is written to ROW.eval.json.tmp and renamed when the eval
# succeeds: a failed eval leaves the previous file as it was and no .tmp.
tmp=
trap '[ -z "$tmp" ] || rm -f "$tmp"' EXIT
# fail ROW STEP LOG: says which step of ROW failed and shows the end of its log.
fail() {
  echo "$1: $2 failed; the end of $3:" >&2
  tail -n 5 "$3" >&2
  exit 1
}
for row in "${rows[@]}"; do
  if [ "$row" = dense ]; then
    tmp=$out/dense.eval.json.tmp
    "$optima" eval --model "$model" --task wikitext2 --seqlen "$seqlen" --max-windows "$maxwin" \
      --data-dir "$data" --json --no-progress > "$tmp" 2>"$out/dense.eval.log" || fail dense eval "$out/dense.eval.log"
    mv "$tmp" "$out/dense.eval.json"; tmp=
    echo "dense: $(grep '"perplexity"' "$out/dense.eval.json")"
    continue
  fi
  case $row in
    wanda-*)  args=(--update none) ;;
    optima-*) args=(--update optima) ;;
    lora-*)   args=(--update optima --lora-rank 0.1 --slim-lora --separate-lora) ;;
    wandalora-*) args=(--update none --lora-rank 0.1 --slim-lora --separate-lora) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  args+=(--method wanda --pattern 2:4 --bits 4 --quant "${row##*-}")
  start=$(date +%s)
  target=$out/$row.model
  "$optima" prune --model "$model" "${args[@]}" --calib "$data/c4/c4_sample.jsonl" \
    --nsamples "$nsamples" --seqlen "$seqlen" --seed 0 --out "$target" --no-progress ${PRUNE_FLAGS:-} 2>"$out/$row.prune.log" ||
    fail "$row" prune "$out/$row.prune.log"
  cp "$target/report.json" "$out/$row.report.json"
  mid=$(date +%s)
  tmp=$out/$row.eval.json.tmp
  "$optima" eval --model "$target" --task wikitext2 --seqlen "$seqlen" --max-windows "$maxwin" \
    --data-dir "$data" --json --no-progress > "$tmp" 2>"$out/$row.eval.log" || fail "$row" eval "$out/$row.eval.log"
  mv "$tmp" "$out/$row.eval.json"; tmp=
  end=$(date +%s)
  echo "$row: prune $((mid-start))s eval $((end-mid))s $(grep '"perplexity"' "$out/$row.eval.json")"
  rm -rf "$target"
done
