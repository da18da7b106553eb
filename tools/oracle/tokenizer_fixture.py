#!/usr/bin/env python3
"""A small synthetic byte-level BPE vocabulary with golden ids from Hugging Face tokenizers, for
model/tokenizer's TestFixtureGolden (runs without the real model).

Command (from /work/main; a few seconds):

    python3 tools/oracle/tokenizer_fixture.py \
        --train /work/shared/data/wikitext-2-raw/wiki.valid.raw \
        --test /work/shared/data/wikitext-2-raw/wiki.test.raw \
        --out model/tokenizer/testdata/bpe_fixture.json

A wider one-off differential check (not committed): add --random 20000 --out /tmp/bigfix.json and run
OPTIMA_BPE_FIXTURE=/tmp/bigfix.json go test -run TestFixtureGolden ./model/tokenizer

A BpeTrainer learns 600 merges on the first 200,000 characters of --train with the GPT-2 ByteLevel
pre-tokenizer, the full 256-symbol byte alphabet, three control tokens and one user-defined token.
The same vocabulary and merges are then used under each pre-tokenizer optima implements, built as
transformers builds it for a GGUF (gguf_tokenizer_mapping.py) or as SmolLM's tokenizer.json does
("smollm-digits"), and the ids of test strings are recorded: hand-picked tricky strings, slices of
--test, and seeded random strings over a pool of hard characters.
"""
import argparse
import json
import random

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def split_bytelevel(regex):
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(regex), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


PRES = {
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "smollm-digits": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
    "llama-bpe": lambda: split_bytelevel(LLAMA3),
    "qwen2": lambda: split_bytelevel(QWEN2),
}

CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER = ["<think>"]

TRICKY = [
    "Hello world", " 1,234.5", "In 2024, 3.14159 and 1000000 people", "a  1 b   22\t3 ４５６ ½ Ⅻ",
    "don't I'll we're they've she'd I'm it's DON'T He'S O'Neil 'sup '' ' ",
    "multiple   spaces    here  ", "new\nlines\n\n\nand\r\nwindows\r\n \n\t\n x", "tabs\tand\t\tmore\t",
    "   leading", "trailing   ", "café naïve Zürich résumé Ångström", "emoji 😀👍🏽 and 🇫🇷 flags",
    "中文分词测试，日本語のテキスト、한국어", "<|im_start|>user\nHello!<|im_end|>\n<think>x</think>",
    "<|endoftext|><|endoftext|>x<|im_end|><|im_", "ĠĊ raw Ġ", "\u00a0nbsp\u2003em\u3000ideo \u2028\u0085",
    "!!! ... ?! --> (a) [b] {c} \"q\" 'q'", " ' s", "x" * 300, "", " ", "\n", "\r\n\r\n", "a\n\n b",
    "e\u0301 combining", "\ufeffBOM", "\x00\x01\x7f control", "x'\u017ft x'St '\u017f",
]

POOL = list("aAbZ  \t\n\r'sStTdDmlLrevV0123456789.,!?-@\"()") + list("éßÆ中文😀½Ⅻ٣\u00a0\u3000\u2028\u0301") + [
    "<|im_end|>", "<think>", "'ll", "'RE", " the", "ing"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--random", type=int, default=200, help="number of seeded random strings")
    a = ap.parse_args()

    train = open(a.train, encoding="utf-8").read()[:200000]
    test = open(a.test, encoding="utf-8").read()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = PRES["gpt2"]()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + len(CONTROL) + 600, special_tokens=CONTROL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([train], trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    # User-defined token: appended to the vocabulary, matched whole as a non-special added token.
    for u in USER:
        vocab[u] = len(vocab)
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    types = [3 if t in CONTROL else 4 if t in USER else 1 for t in tokens]

    rng = random.Random(20240607)
    texts = list(TRICKY)
    for _ in range(3):
        start = rng.randrange(len(test) - 3000)
        texts.append(test[start:start + 3000])
    for _ in range(a.random):
        texts.append("".join(rng.choice(POOL) for _ in range(rng.randrange(1, 40))))

    out = {
        "command": "python3 tools/oracle/tokenizer_fixture.py --train %s --test %s --out %s" % (a.train, a.test, a.out),
        "tokenizers": tokenizers.__version__,
        "tokens": tokens, "token_types": types, "merges": merges, "texts": texts, "ids": {},
    }
    for name, pre in PRES.items():
        t = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
        t.pre_tokenizer = pre()
        t.decoder = decoders.ByteLevel()
        t.add_special_tokens([AddedToken(c, normalized=False, special=True) for c in CONTROL])
        t.add_tokens([AddedToken(u, normalized=False, special=False) for u in USER])
        out["ids"][name] = [t.encode(s, add_special_tokens=False).ids for s in texts]
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print("vocab %d, merges %d, %d texts x %d pre-tokenizers" % (len(tokens), len(merges), len(texts), len(PRES)))


if __name__ == "__main__":
    main()
