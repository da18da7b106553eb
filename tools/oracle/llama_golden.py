#!/usr/bin/env python3
"""Golden values for model/llama and stages/eval from Hugging Face transformers.

Command (from the repository root, CPU, float32):

    python3 tools/oracle/llama_golden.py model/llama/testdata

Tested with torch 2.15.0, transformers 5.24.0. For each variant it writes
<out>/<name>/config.json and model.safetensors (model.save_pretrained) and
<out>/<name>/golden.json with:
  ids            two sequences of token ids ([2][seqlen])
  logits         LlamaForCausalLM logits for them ([2][seqlen][vocab])
  hidden_block0  hidden state after decoder layer 0 ([2][seqlen][hidden])
  capture_block0 input of each linear-input group of layer 0 ({group: [2*seqlen][in]})
  ppl            perplexity oracle: a token stream, seqlen, and the Wanda/SparseGPT
                 eval_ppl_wikitext loop's window losses and perplexity.
Weights are random with a fixed seed and scaled so that logits are far from uniform.
"""
import json
import math
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

VARIANTS = {
    # GQA, untied, rope_theta 500000, no biases.
    "gqa_untied": dict(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        seed=1),
    # GQA, tied embeddings, attention bias, rope_theta 100000 (as SmolLM2), eps 1e-6.
    "gqa_tied_bias": dict(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-6,
        rope_theta=100000.0, tie_word_embeddings=True, attention_bias=True, mlp_bias=False,
        seed=2),
}
SEQLEN = 24
PPL_SEQLEN = 16
PPL_TOKENS = 100  # 6 windows of 16, tail of 4 dropped


def build(name, v, out):
    v = dict(v)
    seed = v.pop("seed")
    theta = v.pop("rope_theta")
    torch.manual_seed(seed)
    cfg = LlamaConfig(**v, rope_parameters={"rope_type": "default", "rope_theta": theta},
                      max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname:
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

    layer = model.model.layers[0]
    hs = [
        layer.self_attn.q_proj.register_forward_pre_hook(hook("model.layers.0.self_attn.qkv")),
        layer.self_attn.o_proj.register_forward_pre_hook(hook("model.layers.0.self_attn.o_proj")),
        layer.mlp.gate_proj.register_forward_pre_hook(hook("model.layers.0.mlp.gate_up")),
        layer.mlp.down_proj.register_forward_pre_hook(hook("model.layers.0.mlp.down_proj")),
    ]
    with torch.no_grad():
        outp = model(ids, output_hidden_states=True)
    for h in hs:
        h.remove()

    # Perplexity exactly as Wanda/SparseGPT eval_ppl_wikitext: windows of
    # seqlen, tail dropped, loss = CrossEntropy over shifted labels,
    # nll = loss * seqlen, ppl = exp(sum(nll) / (nsamples * seqlen)).
    stream = torch.randint(0, cfg.vocab_size, (1, PPL_TOKENS), generator=g)
    nsamples = stream.numel() // PPL_SEQLEN
    nlls, losses = [], []
    with torch.no_grad():
        for i in range(nsamples):
            inputs = stream[:, i * PPL_SEQLEN:(i + 1) * PPL_SEQLEN]
            lm_logits = model(inputs).logits
            shift_logits = lm_logits[:, :-1, :].contiguous()
            shift_labels = inputs[:, 1:]
            loss = torch.nn.CrossEntropyLoss()(shift_logits.reshape(-1, shift_logits.size(-1)),
                                               shift_labels.reshape(-1))
            losses.append(loss.item())
            nlls.append(loss.float() * PPL_SEQLEN)
    ppl = torch.exp(torch.stack(nlls).sum() / (nsamples * PPL_SEQLEN)).item()

    golden = {
        "ids": ids.tolist(),
        "logits": outp.logits.tolist(),
        # hidden_states[1] is the output of decoder layer 0 (hidden_states[0] = embeddings).
        "hidden_block0": outp.hidden_states[1].tolist(),
        "capture_block0": captured,
        "ppl": {"stream": stream[0].tolist(), "seqlen": PPL_SEQLEN, "window_loss": losses,
                "perplexity": ppl},
    }
    os.remove(os.path.join(d, "generation_config.json"))
    with open(os.path.join(d, "golden.json"), "w") as f:
        # 8 significant digits: far below the 1e-4 relative tolerance of the tests.
        f.write(json.dumps(rounded(golden), separators=(",", ":")))
    print(name, "ppl", ppl, "max|logit|", outp.logits.abs().max().item())


def rounded(x):
    if isinstance(x, float):
        return float("%.8g" % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/llama/testdata"
    for name, v in VARIANTS.items():
        build(name, v, out)


if __name__ == "__main__":
    main()
