#!/usr/bin/env python3
"""Golden values for model/opt from Hugging Face transformers' OPTForCausalLM.

Command (from the repository root, CPU, float32):

    python3 tools/oracle/opt_golden.py model/opt/testdata

Tested with torch 2.15.0, transformers 5.24.0. For each variant it writes
<out>/<name>/config.json and model.safetensors (model.save_pretrained) and
<out>/<name>/golden.json with:
  ids            two unpadded sequences of token ids ([2][seqlen]); positions are
                 what OPTDecoder derives from an all-ones attention mask
                 (cumsum - 1, looked up at index + 2)
  logits         OPTForCausalLM logits ([2][seqlen][vocab])
  hidden_block0  output of decoder layer 0 ([2][seqlen][hidden])
  capture_block0 input of each linear-input group of layer 0 ({group: [2*seqlen][in]})
Weights are random with a fixed seed and scaled so that logits are far from uniform.

The "preln" variant also gets an OPT-style tokenizer: GPT-2 byte-level BPE over the
256 byte symbols plus 12 merges, with OPT's special tokens <s> 0, <pad> 1, </s> 2,
<unk> 3 and OPT's tokenizer settings (bos = eos = unk = "</s>", add_bos_token), saved
by transformers' GPT2Tokenizer.save_pretrained as tokenizer.json and
tokenizer_config.json; <out>/preln/tokenizer_golden.json holds texts and the ids
transformers gives them (with the prepended </s>), including the first 3000
characters of WikiText-2 test from the data directory ($OPTIMA_DATA, ../shared/data or
../../shared/data), when one exists.
"""
import json
import math
import os
import sys

import torch
from transformers import OPTConfig, OPTForCausalLM

VARIANTS = {
    # OPT-125m style: pre-LN, tied embeddings, biases, final_layer_norm.
    "preln": dict(
        vocab_size=272, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
        num_attention_heads=4, do_layer_norm_before=True, word_embed_proj_dim=64,
        enable_bias=True, layer_norm_elementwise_affine=True, tie_word_embeddings=True,
        activation_function="relu", seed=1),
    # OPT-350m style: post-LN (no final_layer_norm), project_in/project_out
    # between word_embed_proj_dim 32 and hidden 64, tied embeddings.
    "postln_proj": dict(
        vocab_size=128, hidden_size=64, ffn_dim=96, num_hidden_layers=2,
        num_attention_heads=4, do_layer_norm_before=False, word_embed_proj_dim=32,
        enable_bias=True, layer_norm_elementwise_affine=True, tie_word_embeddings=True,
        activation_function="relu", seed=2),
    # No linear biases, LayerNorms without affine parameters, untied lm_head,
    # 8 heads of 8, exact GELU.
    "nobias_untied_gelu": dict(
        vocab_size=112, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
        num_attention_heads=8, do_layer_norm_before=True, word_embed_proj_dim=64,
        enable_bias=False, layer_norm_elementwise_affine=False, tie_word_embeddings=False,
        activation_function="gelu", seed=3),
    # Pre-LN checkpoint fine-tuned before transformers v4.20.1: no final_layer_norm.
    "preln_no_final_ln": dict(
        vocab_size=96, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
        num_attention_heads=2, do_layer_norm_before=True, word_embed_proj_dim=32,
        enable_bias=True, layer_norm_elementwise_affine=True, tie_word_embeddings=True,
        activation_function="relu", _remove_final_layer_norm=True, seed=4),
}
SEQLEN = 16
MAX_POS = 40


def build(name, v, out):
    v = dict(v)
    seed = v.pop("seed")
    torch.manual_seed(seed)
    cfg = OPTConfig(**v, max_position_embeddings=MAX_POS, attn_implementation="eager")
    model = OPTForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "layer_norm" in pname and pname.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname or "embed_positions" in pname:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # linear weights [out, in]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

    ids = torch.randint(0, cfg.vocab_size, (2, SEQLEN), generator=g)
    captured = {}

    def hook(group):
        def f(mod, args):
            captured[group] = args[0].reshape(-1, args[0].shape[-1]).tolist()
        return f

    p = "model.decoder.layers.0."
    layer = model.model.decoder.layers[0]
    hs = [
        layer.self_attn.q_proj.register_forward_pre_hook(hook(p + "self_attn.qkv")),
        layer.self_attn.out_proj.register_forward_pre_hook(hook(p + "self_attn.out_proj")),
        layer.fc1.register_forward_pre_hook(hook(p + "fc1")),
        layer.fc2.register_forward_pre_hook(hook(p + "fc2")),
    ]
    with torch.no_grad():
        outp = model(ids, output_hidden_states=True)
    for h in hs:
        h.remove()
    golden = {
        "ids": ids.tolist(),
        "logits": outp.logits.tolist(),
        # hidden_states[1] is the output of decoder layer 0 (hidden_states[0] =
        # token embeddings after project_in, plus positions).
        "hidden_block0": outp.hidden_states[1].tolist(),
        "capture_block0": captured,
    }
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    with open(os.path.join(d, "golden.json"), "w") as f:
        # 8 significant digits: far below the 1e-4 relative tolerance of the tests.
        f.write(json.dumps(rounded(golden), separators=(",", ":")))
    print(name, "max|logit|", outp.logits.abs().max().item(), "tensors",
          sorted(k for k, _ in model.state_dict().items())[:3], "...")


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


MERGES = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("\u0120", "a"), ("i", "n"), ("\u0120", "w"),
          ("o", "r"), ("e", "r"), ("\u0120", "o"), ("l", "l"), ("\u0120w", "or"), ("\u0120wor", "l")]


def build_tokenizer(d):
    from transformers import GPT2Tokenizer
    b2u = bytes_to_unicode()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    assert len(vocab) == VARIANTS["preln"]["vocab_size"]
    tok = GPT2Tokenizer(vocab=vocab, merges=MERGES, unk_token="</s>", bos_token="</s>",
                        eos_token="</s>", pad_token="<pad>", add_bos_token=True,
                        add_prefix_space=False, errors="replace")
    tok.save_pretrained(d)
    texts = ["Hello the world", " the world  in\n\nwater", "", "a</s>b <pad> c<s>d",
             "caf\u00e9 \u65e5\u672c 123 it's", "   leading spaces and trailing   "]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for data in [os.environ.get("OPTIMA_DATA", ""), os.path.join(root, "..", "shared", "data"),
                 os.path.join(root, "..", "..", "shared", "data")]:
        wiki = os.path.join(data, "wikitext-2-raw", "wiki.test.raw")
        if data and os.path.exists(wiki):
            with open(wiki, encoding="utf-8") as f:
                texts.append(f.read()[:3000])
            break
    golden = {"texts": texts, "ids": [tok(t).input_ids for t in texts]}
    with open(os.path.join(d, "tokenizer_golden.json"), "w") as f:
        json.dump(golden, f, ensure_ascii=False)


def rounded(x):
    if isinstance(x, float):
        return float("%.8g" % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/opt/testdata"
    for name, v in VARIANTS.items():
        build(name, v, out)
    build_tokenizer(os.path.join(out, "preln"))


if __name__ == "__main__":
    main()
