#!/usr/bin/env python3
"""tokenizer.json files as Hugging Face tokenizers itself serializes them, for model/tokenizer's
TestFromHFJSONPythonFiles (FromHFJSON must reproduce the golden ids of bpe_fixture.json with them).

Command (from /work/main; a second):

    python3 tools/oracle/tokenizer_hfjson_files.py \
        --fixture model/tokenizer/testdata/bpe_fixture.json --out model/tokenizer/testdata/hf

For each pre-tokenizer of the fixture it rebuilds the exact Tokenizer that tools/oracle/tokenizer_fixture.py
used for the golden ids (same vocab, merges, pre-tokenizer, ByteLevel decoder, added tokens) and writes
<out>/<pre>/tokenizer.json with Tokenizer.save (merges as pairs, every default field spelt out). Variants
for the post-processor: gpt2 gets ByteLevel (as GPT-2's own file), llama-bpe a TemplateProcessing that
prepends <|im_start|> (as Llama 3's file prepends <|begin_of_text|>), qwen2 none; smollm-digits also gets a
tokenizer_config.json whose bos_token is an AddedToken object and whose add_bos_token is true.
"""
import argparse
import json
import os

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, processors

import tokenizer_fixture as fx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    f = json.load(open(a.fixture, encoding="utf-8"))
    tokens, types, merges = f["tokens"], f["token_types"], f["merges"]
    vocab = {t: i for i, t in enumerate(tokens) if types[i] != 4}
    for name, pre in fx.PRES.items():
        t = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
        t.pre_tokenizer = pre()
        t.decoder = decoders.ByteLevel()
        t.add_special_tokens([AddedToken(c, normalized=False, special=True) for c in fx.CONTROL])
        t.add_tokens([AddedToken(u, normalized=False, special=False) for u in fx.USER])
        if name == "gpt2":
            t.post_processor = processors.ByteLevel(trim_offsets=False)
        elif name == "llama-bpe":
            bos = "<|im_start|>"
            t.post_processor = processors.TemplateProcessing(
                single=bos + " $A", pair=bos + " $A " + bos + " $B:1", special_tokens=[(bos, vocab[bos])])
        got = [t.encode(s, add_special_tokens=False).ids for s in f["texts"]]
        assert got == f["ids"][name], name
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        t.save(os.path.join(d, "tokenizer.json"))
        if name == "smollm-digits":
            with open(os.path.join(d, "tokenizer_config.json"), "w") as fo:
                json.dump({"add_bos_token": True, "add_eos_token": False,
                           "bos_token": {"__type": "AddedToken", "content": "<|im_start|>", "lstrip": False,
                                         "normalized": False, "rstrip": False, "single_word": False},
                           "eos_token": "<|im_end|>", "tokenizer_class": "PreTrainedTokenizerFast"}, fo, indent=2)
    print("tokenizers", tokenizers.__version__, "wrote", ", ".join(fx.PRES))


if __name__ == "__main__":
    main()
