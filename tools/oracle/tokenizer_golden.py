#!/usr/bin/env python3
"""Golden token ids of SmolLM2-135M-Instruct's tokenizer, as Hugging Face transformers builds it
from the GGUF (the project's reference), for model/tokenizer's TestSmolLM2Golden.

Command (from /work/main; takes about 30 s):

    python3 tools/oracle/tokenizer_golden.py \
        --gguf /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --wikitext /work/shared/data/wikitext-2-raw/wiki.test.raw \
        --out model/tokenizer/testdata/smollm2_golden.json

The WikiText-2 stream is "\n\n".join(load_dataset("wikitext", "wikitext-2-raw-v1", split="test")["text"])
(SparseGPT/Wanda), rebuilt from wiki.test.raw the way the dataset's loading script makes its rows: every
line keeps its trailing "\n", and a blank line (" \n" in the file) becomes "" (stages/eval/wikitext.go
does the same). Written: the ids of the stream's first 20,000 characters (code points), the token count
of the whole stream, the sha256 of all its ids as little-endian int32, ids of tricky strings, and the
tokenizer's normalizer/pre-tokenizer/post-processor/decoder as transformers built them.
"""
import argparse
import hashlib
import json
import os

import numpy as np
import tokenizers
import transformers
from transformers import AutoTokenizer

PREFIX_CHARS = 20000

CASES = [
    "Hello world",
    " 1,234.5",
    "In 2024, 3.14159 and 1000000 people",
    "a  1 b   22\t3",
    "don't I'll we're they've she'd I'm it's DON'T He'S",
    "multiple   spaces    here  ",
    "new\nlines\n\n\nand\r\nwindows\r\n",
    "tabs\tand\t\tmore\t",
    "   leading spaces",
    "trailing spaces   ",
    "café naïve Zürich résumé Ångström",
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "中文分词测试，日本語のテキスト、한국어",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>x<|im_end|>",
    "<|im_start",
    " = Robert Boulter = \n\n Robert Boulter is an English film , television and theatre actor . \n",
    "@-@ @,@ @.@ 1 @,@ 000",
    "ĠĊ raw byte-level symbols Ġ",
    "\u00a0nbsp\u2003em\u3000ideographic",
    "x" * 300,
    "",
    " ",
    "\n",
]


def wikitext_stream(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rows.append(line if line.strip() else "")
    return "\n\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--wikitext", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(os.path.dirname(a.gguf), gguf_file=os.path.basename(a.gguf))
    backend = json.loads(tok.backend_tokenizer.to_str())

    text = wikitext_stream(a.wikitext)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with_special = tok(text)["input_ids"]
    prefix = tok(text[:PREFIX_CHARS], add_special_tokens=False)["input_ids"]

    cases = []
    for s in CASES:
        cids = tok(s, add_special_tokens=False)["input_ids"]
        cases.append({"text": s, "ids": cids, "decoded": tok.decode(cids)})

    out = {
        "command": "python3 tools/oracle/tokenizer_golden.py --gguf %s --wikitext %s --out %s"
        % (a.gguf, a.wikitext, a.out),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "gguf": os.path.basename(a.gguf),
        "tokenizer_class": type(tok).__name__,
        "normalizer": backend["normalizer"],
        "pre_tokenizer": backend["pre_tokenizer"],
        "post_processor": backend["post_processor"],
        "decoder": backend["decoder"],
        "bpe_options": {k: v for k, v in backend["model"].items() if k not in ("vocab", "merges")},
        "added_tokens": backend["added_tokens"],
        # ids that tok(text) (add_special_tokens=True) puts before the text's own ids: [] means no BOS.
        "special_prefix": with_special[: len(with_special) - len(ids)],
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "stream_chars": len(text),
        "stream_tokens": len(ids),
        "stream_sha256": hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest(),
        "prefix_chars": PREFIX_CHARS,
        "prefix_text": text[:PREFIX_CHARS],
        "prefix_ids": prefix,
        "cases": cases,
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print("stream: %d chars, %d tokens, sha256 %s" % (len(text), len(ids), out["stream_sha256"]))


if __name__ == "__main__":
    main()
