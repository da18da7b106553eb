#!/usr/bin/env bash
# Layer-objective study on block 0 of SmolLM2-135M: for each selector the
# selector's own update against the exact OPTIMA re-fit on the same mask
# (block 0 sees the same calibration inputs in every run, so the masks agree),
# with the optima solve at damping 0.01 (default) and 1e-4.
#
#   bench/smollm2/block0.sh OPTIMA MODEL DATA OUT NSAMPLES PATTERNFLAGS...
#
# e.g. bench/smollm2/block0.sh ./optima SmolLM2.gguf ../shared/data out 8 --sparsity 0.5
# It writes OUT/SEL-UPDATE-DAMPING.json (block 0's done marker: every linear's
# relative error before/after and damping) and the run's output in
# OUT/SEL-UPDATE-DAMPING.log.
set -euo pipefail
optima=$1 model=$2 data=$3 out=$4 nsamples=$5
shift 5
mkdir -p "$out"
for sel in sparsegpt thanos admm; do
  for run in own:0.01 optima:0.01 optima:0.0001; do
    upd=${run%%:*} damp=${run##*:}
    name=$sel-$upd-$damp
    rm -rf "$out/$name.model" "$out/$name.model.work"
    "$optima" prune --model "$model" --method "$sel" "$@" --update "$upd" --damping "$damp" \
      --calib "$data/c4/c4_sample.jsonl" --nsamples "$nsamples" --seqlen 2048 --seed 0 --shards 1 \
      --stop-after-blocks 1 --out "$out/$name.model" --no-progress ${PRUNE_FLAGS:-} >"$out/$name.log" 2>&1 ||
      { echo "$name: prune failed; the end of $out/$name.log:" >&2; tail -n 5 "$out/$name.log" >&2; exit 1; }
    cp "$out/$name.model.work"/*/block-000.done.json "$out/$name.json"
    rm -rf "$out/$name.model.work"
    echo "$name done"
  done
done
