#!/usr/bin/env bash
# Forward throughput of optima against PyTorch on the CPU with the same
# threads: WikiText-2 windows of SEQLEN tokens through the whole model (30
# blocks, LM head, NLL), tokens/s for both and the ratio optima/PyTorch.
#
# Usage, from the repository root:
#   bench/forward/run.sh [THREADS [WINDOWS]]
# Environment (defaults in brackets):
#   MODEL   GGUF file [/work/models/SmolLM2-135M-Instruct.Q4_1.gguf; scripts/get-model.sh fetches it]
#   DATA    data directory with wikitext-2-raw/ [../shared/data, else /work/shared/data]
#   SEQLEN  tokens per window [2048]
#   OPTIMA  optima binary to use [built from ./cmd/optima into a temp dir]
#   REPEATS runs of each side, alternating; the fastest of each is reported [2]
#   OUT     directory for optima.json, torch.json and torch.log [a temp dir, removed at exit]
# THREADS defaults to 2 and WINDOWS to 2.
#
# optima: `optima eval --threads T --json` with GOMAXPROCS=T; its "seconds"
# start after tokenization and cover the weight loading (the GGUF tensors are
# dequantized block by block, interleaved with the compute), the blocks, the
# head and the NLL. With REPEATS=R the two sides alternate R times (an optima
# eval run, then a timed PyTorch pass over the same windows) and the fastest
# of each side is kept (on a shared machine the best run is the least
# disturbed one). No warm-up (nothing to warm up in Go beyond the first
# allocations). PyTorch: bench/forward/torch_forward.py, torch.set_num_threads(T),
# same GGUF through transformers (float32), same stream and windows, load and
# tokenization excluded, one untimed warm-up window, model(x, labels=x) under
# torch.inference_mode(). The two perplexities are printed as a check that
# both scored the same tokens with the same weights.
set -euo pipefail
threads=${1:-2}
windows=${2:-2}
seqlen=${SEQLEN:-2048}
model=${MODEL:-/work/models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -z "${DATA:-}" ]; then
  if [ -d ../shared/data ]; then DATA=../shared/data; else DATA=/work/shared/data; fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=${OUT:-$tmp}
mkdir -p "$out"
optima=${OPTIMA:-}
if [ -z "$optima" ]; then
  optima=$tmp/optima
  go build -o "$optima" ./cmd/optima
fi
[ -f "$model" ] || { echo "run.sh: model $model not found (scripts/get-model.sh)" >&2; exit 2; }

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $threads, $windows windows of $seqlen tokens" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
repeats=${REPEATS:-2}
# optima eval runs between the timed PyTorch passes (torch_forward.py
# --before-pass), so both sides sample the same stretch of machine load.
printf -v optima_cmd 'GOMAXPROCS=%q %q eval --model %q --task wikitext2 --seqlen %q --max-windows %q --threads %q --data-dir %q --json --no-progress > %q/optima.$PASS.json' \
  "$threads" "$optima" "$model" "$seqlen" "$windows" "$threads" "$DATA" "$out"
python3 "$(dirname "$0")/torch_forward.py" --gguf "$model" --data "$DATA" --seqlen "$seqlen" \
  --windows "$windows" --threads "$threads" --repeats "$repeats" --before-pass "$optima_cmd" \
  > "$out/torch.json" 2> "$out/torch.log" || { cat "$out/torch.log" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out/torch.json" "$out"/optima.*.json <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
runs = [json.load(open(p)) for p in sys.argv[2:]]
o = max(runs, key=lambda r: r['tokens_per_second'])
secs = ", ".join(f"{r['seconds']:.1f}" for r in runs)
print(f"optima  {o['tokens_per_second']:8.1f} tokens/s  ({o['tokens']} tokens in {o['seconds']:.1f}s, ppl {o['perplexity']:.4f}; runs {secs}s)")
print(f"pytorch {t['tokens_per_second']:8.1f} tokens/s  ({t['tokens']} tokens in {t['seconds']:.1f}s, ppl {t['perplexity']:.4f}; passes {', '.join(f'{s:.1f}' for s in t['pass_seconds'])}s; torch {t['torch']}, {t['attn_implementation']}, {t['threads']} threads)")
print(f"ratio optima/pytorch {o['tokens_per_second'] / t['tokens_per_second']:.3f}")
EOF
