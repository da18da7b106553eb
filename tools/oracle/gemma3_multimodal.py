#!/usr/bin/env python3
"""A tiny multimodal Gemma 3 checkpoint and its text-only logits, for model/gemma's
TestGoldenMultimodal (hf.Dir loading Gemma3ForConditionalGeneration as a text model).

Command (from the repository root, CPU, float32):

    python3 tools/oracle/gemma3_multimodal.py model/gemma/testdata/gemma3mm

Tested with torch 2.15.0, transformers 5.24.0. Writes <out>/config.json and
<out>/model.safetensors (Gemma3ForConditionalGeneration.save_pretrained: text weights
under language_model.model.*, a one-layer SigLIP vision tower and the projector) and
<out>/golden.json with ids (one text-only sequence of 10 ids) and logits ([10][vocab],
model(input_ids=ids).logits, eager attention). Random weights, seed 0; norm weights
w ~ N(0, 0.1²) in (1 + w). Layer 0 slides over 4 tokens, layer 1 is global.
"""
import json
import os
import sys

import torch
from transformers import Gemma3Config, Gemma3ForConditionalGeneration


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, vocab_size=300, sliding_window=4,
                layer_types=["sliding_attention", "full_attention"])
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    cfg._attn_implementation = "eager"
    m = Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.normal_(0, 0.1)
    m.save_pretrained(out)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    ids = torch.tensor([[5, 17, 99, 3, 250, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        logits = m(input_ids=ids).logits[0]
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump({"ids": ids[0].tolist(), "logits": logits.tolist()}, f)


if __name__ == "__main__":
    main()
