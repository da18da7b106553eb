#!/usr/bin/env python3
"""Small SentencePiece-style BPE fixtures (byte fallback) and their golden ids, for model/tokenizer's
TestSentencePieceFixture and model/gguf's TestSentencePieceGGUF. No download: the vocabulary is trained
here with Hugging Face tokenizers' BpeTrainer on the first lines of WikiText-2 valid.

Command (from the repo root; a few seconds):

    python3 tools/oracle/tokenizer_sp_fixture.py --data ../shared/data/wikitext-2-raw/wiki.valid.raw \
        --out model/tokenizer/testdata/sentencepiece --gguf-out model/gguf/testdata

Vocabulary: <unk> <s> </s>, the 256 <0xNN> byte tokens, then the trained pieces (about 700; characters
outside the training text fall back to bytes). tokenizer.json variants, each in <out>/<name>/ with a
tokenizer_config.json whose tokenizer_class is PreTrainedTokenizerFast (so transformers keeps the file's
pipeline):

  llama2     normalizer Prepend("▁")+Replace(" ", "▁"), no pre-tokenizer, decoder Replace, ByteFallback,
             Fuse, Strip(" ", 1, 0); TemplateProcessing "<s> $A"; added token <think> (not special)
  metaspace  Metaspace(prepend_scheme first, split false) pre-tokenizer and decoder; the config sets
             add_bos_token true and add_eos_token true (transformers rebuilds the template)
  gemma      normalizer Replace(" ", "▁"), Split(" ", merged_with_previous), decoder Replace,
             ByteFallback, Fuse; "\\n" and "\\n\\n" added (not special); "<s> $A" template
  unk        no byte fallback, fuse_unk, unk_token <unk>, Metaspace(always, split true), ignore_merges
  llama2cls  the llama2 tokenizer.json with tokenizer_class LlamaTokenizer: transformers replaces the
             file's pipeline with the class's (Metaspace prepend_scheme first, no normalizer)
  legacycls  the same with legacy true (prepend_scheme always)

For the two class variants the golden ids come from the backend tokenizer transformers builds, as for
the GGUF files below.

GGUF files (tokenizer metadata only, no tensors): sp_llama.gguf (general.architecture llama,
tokenizer.ggml.model llama, scores with ties) and sp_gemma.gguf (architecture gemma3, with a token
of two real spaces), read by transformers' AutoTokenizer.from_pretrained(dir, gguf_file=...).

golden.json: per variant and text, the ids of tokenizers' encode(text, add_special_tokens=False) (for
the GGUF files: of the backend tokenizer transformers builds), the ids of transformers'
tokenizer(text) (default special tokens), and tokenizers' decode(ids, skip_special_tokens=False).
"""
import argparse
import json
import os
import shutil

import gguf
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

TEXTS = [
    "",
    "Hello world",
    " Hello  world ",
    "   leading and trailing   ",
    "The game 's team , in 2011 , was @-@ good .",
    "naïve café — “quoted” ½ 東京 🙂 Ω",
    "tab\there\nnew line\n\nblank line",
    "<s>Hello</s> <unk> x",
    "before<think>inside<think>after",
    "Zqxj vvvv kkk 0000 9876543210",
    "a\u0301 combining, ﬁ ligature",
    "\n\n\n",
    " ",
    "▁already▁metaspace",
]


def train(lines):
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tk.train_from_iterator(lines, tr)
    m = json.loads(tk.to_str())["model"]
    trained = sorted(m["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tok, _ in trained:
        if tok not in vocab:
            vocab[tok] = len(vocab)
    merges = [tuple(p) if isinstance(p, list) else tuple(p.split(" ")) for p in m["merges"]]
    return vocab, merges


def bpe(vocab, merges, **kw):
    return models.BPE(vocab=dict(vocab), merges=list(merges), dropout=None, **kw)


def specials(tk, extra=()):
    tk.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    if extra:
        tk.add_tokens([AddedToken(t, normalized=False, special=False) for t in extra])


def template(tk):
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])


def variants(vocab, merges):
    out = {}
    t = Tokenizer(bpe(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    specials(t, ["<think>"])
    template(t)
    out["llama2"] = (t, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})

    t = Tokenizer(bpe(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    specials(t)
    out["metaspace"] = (t, {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "add_eos_token": True})

    t = Tokenizer(bpe(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.normalizer = normalizers.Replace(" ", "▁")
    t.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials(t, ["\n", "\n\n"])
    template(t)
    out["gemma"] = (t, {"bos_token": "<s>", "eos_token": "</s>"})

    t = Tokenizer(bpe(vocab, merges, unk_token="<unk>", byte_fallback=False, fuse_unk=True, ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials(t)
    out["unk"] = (t, {"eos_token": "</s>"})
    return out


def write_gguf(path, arch, tokens, scores, types):
    w = gguf.GGUFWriter(path, arch)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gguf-out", required=True)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n")[:300] if l.strip()]
    vocab, merges = train(lines)
    texts = TEXTS + lines[:6]
    golden = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__, "texts": texts, "variants": {}}

    for name, (tk, conf) in variants(vocab, merges).items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        tk.save(os.path.join(d, "tokenizer.json"))
        conf = dict(conf, tokenizer_class="PreTrainedTokenizerFast", clean_up_tokenization_spaces=False)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(conf, f, indent=1, ensure_ascii=False)
        tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        hf = AutoTokenizer.from_pretrained(d)
        golden["variants"][name] = cases(texts, tk, hf)

    for name, extra in [("llama2cls", {}), ("legacycls", {"legacy": True})]:
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(args.out, "llama2", "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        conf = dict(extra, tokenizer_class="LlamaTokenizer", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(conf, f, indent=1, ensure_ascii=False)
        hf = AutoTokenizer.from_pretrained(d)
        golden["variants"][name] = cases(texts, hf.backend_tokenizer, hf)

    # GGUF: the same vocabulary with scores (ties every three tokens) instead of merges.
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] + ["<think>", "  "]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(vocab) - 259) + [4, 1]
    scores = [0.0] * 259 + [-float(i // 3) for i in range(len(vocab) - 259)] + [0.0, -1000.0]
    for name, arch in [("sp_llama", "llama"), ("sp_gemma", "gemma3")]:
        path = os.path.join(args.gguf_out, name + ".gguf")
        write_gguf(path, arch, tokens, scores, types)
        hf = AutoTokenizer.from_pretrained(args.gguf_out, gguf_file=name + ".gguf")
        golden["variants"][name] = cases(texts, hf.backend_tokenizer, hf)
    for d in [args.out, args.gguf_out]:
        with open(os.path.join(d, "sp_golden.json" if d == args.gguf_out else "golden.json"), "w") as f:
            json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")


def cases(texts, tk, hf):
    out = []
    for s in texts:
        ids = tk.encode(s, add_special_tokens=False).ids
        out.append({"ids": ids, "default_ids": hf(s)["input_ids"], "decoded": tk.decode(ids, skip_special_tokens=False)})
    return {"bos": hf.bos_token_id, "eos": hf.eos_token_id, "vocab_size": tk.get_vocab_size(with_added_tokens=True), "cases": out}


if __name__ == "__main__":
    main()
