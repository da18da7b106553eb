#!/usr/bin/env bash
# Forward throughput of optima against PyTorch per model family (Llama, OPT,
# Gemma 2, Gemma 3) at SmolLM2-135M's widths, same threads, in one run.
#
# Usage, from the repository root:
#   bench/forward/families.sh [THREADS]
# Environment (defaults in brackets):
#   LAYERS  blocks per model [4]
#   SEQLEN  tokens in the sequence [2048]
#   REPEATS timed passes of each side, alternating; the fastest is kept [3]
#   OUT     directory for the models and families.jsonl [a temp dir, removed at exit]
# THREADS defaults to 2.
#
# bench/forward/families (Go) writes random models with internal/tinymodel
# (hidden 576, 9 heads of 64, 3 KV heads, intermediate/ffn_dim 1536, vocab
# 320, float32; Gemma's even layers slide over 512 tokens) and times one
# forward pass (embedding, blocks, logits) of one SEQLEN-token sequence on
# kernels/cpu; bench/forward/families_forward.py loads the same directories
# with transformers (float32, its default attention implementation) and
# alternates optima passes with PyTorch passes on the same ids. Loading and
# warm-up are not timed on either side. Unlike run.sh (whole SmolLM2 with the
# 49152-word LM head and the NLL) this measures the blocks.
set -euo pipefail
threads=${1:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=${OUT:-$tmp}
mkdir -p "$out"
go build -o "$tmp/families" ./bench/forward/families
"$tmp/families" -write "$out/models" -layers "${LAYERS:-4}" > /dev/null
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $threads, ${LAYERS:-4} layers, ${SEQLEN:-2048} tokens" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 "$(dirname "$0")/families_forward.py" --optima "$tmp/families" --threads "$threads" \
  --seqlen "${SEQLEN:-2048}" --repeats "${REPEATS:-3}" \
  llama="$out/models/llama" opt="$out/models/opt" gemma2="$out/models/gemma2" gemma3="$out/models/gemma3" \
  > "$out/families.jsonl" 2> "$out/torch.log" || { cat "$out/torch.log" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out/families.jsonl" <<'PY'
import json, sys
print(f"{'family':8} {'attn':6} {'optima tok/s':>12} {'pytorch tok/s':>13} {'ratio':>6}  logits rel diff  passes optima / pytorch (s)")
for line in open(sys.argv[1]):
    r = json.loads(line)
    o = ", ".join(f"{s:.2f}" for s in r["optima_pass_seconds"])
    p = ", ".join(f"{s:.2f}" for s in r["pytorch_pass_seconds"])
    print(f"{r['family']:8} {r['attn_implementation']:6} {r['optima_tokens_per_second']:12.1f} {r['pytorch_tokens_per_second']:13.1f} "
          f"{r['ratio_optima_pytorch']:6.3f}  {r['last_logits_max_rel_diff']:.1e}          {o} / {p}")
PY
