#!/usr/bin/env python3
"""Check that the tokenizer.json / tokenizer_config.json optima writes (BPE.HFTokenizerJSON,
HFTokenizerConfigJSON) load in Hugging Face transformers and tokenize exactly like the reference.

Commands (from /work/main; about two minutes, most of it loading the GGUF in transformers):

    OPTIMA_HF_TOKENIZER_OUT=/tmp/hftok OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        go test -count=1 -run TestWriteHFTokenizer ./model/tokenizer
    python3 tools/oracle/tokenizer_hfjson_check.py --dir /tmp/hftok \
        --gguf /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --wikitext /work/shared/data/wikitext-2-raw/wiki.test.raw \
        --fixture model/tokenizer/testdata/bpe_fixture.json

Checked: smollm2/ against AutoTokenizer.from_pretrained(gguf_file=...) on the whole WikiText-2 test stream
and the golden tricky strings (ids with and without special tokens, decode); smollm2-bos/ prepends BOS
with add_special_tokens=True and nothing else; fixture-<pre>/ reproduce bpe_fixture.json's ids.
Exits non-zero on any mismatch. Nothing is written.
"""
import argparse
import json
import os
import sys

from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from tokenizer_golden import CASES, wikitext_stream  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--wikitext", required=True)
    ap.add_argument("--fixture", required=True)
    a = ap.parse_args()
    bad = 0

    def check(what, got, want):
        nonlocal bad
        if got != want:
            bad += 1
            print("MISMATCH", what, str(got)[:200], str(want)[:200])

    fx = json.load(open(a.fixture, encoding="utf-8"))
    for pre, ids in fx["ids"].items():
        tok = AutoTokenizer.from_pretrained(os.path.join(a.dir, "fixture-" + pre))
        for text, want in zip(fx["texts"], ids):
            check("fixture-%s %r" % (pre, text[:40]), tok(text, add_special_tokens=False)["input_ids"], want)
            check("fixture-%s decode %r" % (pre, text[:40]), tok.decode(want), text)
        print("fixture-%s: %s, %d texts" % (pre, type(tok).__name__, len(ids)))

    ref = AutoTokenizer.from_pretrained(os.path.dirname(a.gguf), gguf_file=os.path.basename(a.gguf))
    mine = AutoTokenizer.from_pretrained(os.path.join(a.dir, "smollm2"))
    bos = AutoTokenizer.from_pretrained(os.path.join(a.dir, "smollm2-bos"))
    text = wikitext_stream(a.wikitext)
    want = ref(text, add_special_tokens=False)["input_ids"]
    check("smollm2 wikitext", mine(text, add_special_tokens=False)["input_ids"], want)
    check("smollm2 wikitext special", mine(text)["input_ids"], ref(text)["input_ids"])
    check("smollm2-bos wikitext", bos(text)["input_ids"], [bos.bos_token_id] + want)
    check("smollm2-bos no special", bos(text, add_special_tokens=False)["input_ids"], want)
    check("smollm2 bos/eos", (mine.bos_token, mine.eos_token), (ref.bos_token, ref.eos_token))
    for s in CASES:
        ids = ref(s, add_special_tokens=False)["input_ids"]
        check("smollm2 %r" % s[:40], mine(s, add_special_tokens=False)["input_ids"], ids)
        check("smollm2 decode %r" % s[:40], mine.decode(ids), ref.decode(ids))
    print("smollm2: %s, wikitext %d tokens, %d cases; smollm2-bos bos=%r" % (
        type(mine).__name__, len(want), len(CASES), bos.bos_token))
    print("FAIL: %d mismatches" % bad if bad else "OK: all identical")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
