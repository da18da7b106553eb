#!/usr/bin/env python3
"""Checks that optima prune --separate-lora writes an adapter PEFT loads.

Command (from the repo root; run once by hand, not in CI; peft is not part of
the system Python, so a throwaway venv that sees the system packages):
    python3 -m venv --system-site-packages /tmp/pv && /tmp/pv/bin/pip install --no-deps peft
    go build -o /tmp/optima ./cmd/optima && rm -rf /tmp/pc && for m in sep merged; do \
      /tmp/optima prune --model model/gguf/testdata/tiny_llama.gguf --method wanda --pattern 2:4 \
        --update optima --bits 4 --quant slim --lora-rank 0.5 --slim-lora \
        $([ $m = sep ] && echo --separate-lora) --calib /work/shared/data/c4/c4_sample.jsonl \
        --nsamples 2 --seqlen 16 --seed 0 --out /tmp/pc/$m --no-progress; done && \
    /tmp/pv/bin/python tools/oracle/peft_adapter_check.py /tmp/pc/sep /tmp/pc/merged

It loads SEP (the quantized weights, exact zeros) with transformers, wraps it
with peft.PeftModel.from_pretrained(SEP/adapter) (no missing or unexpected
adapter keys allowed), and compares its logits with MERGED (the same run with
the adapter merged at prune time, W_q + B·A) and with SEP without the
adapter: with the adapter they must agree to float32 rounding, without it
they must not.

Run 2026-11-30 (peft 0.21.2, transformers 5.24; tiny_llama.gguf has one block,
ranks 8 and 16 through rank_pattern): 7 LoRA modules, PEFT scaling 1.0, max
|logits diff| with the PEFT adapter 2.4e-05 against the merged model, 23
without it (max |logit| 19.7).
"""
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main(sep, merged):
    base = AutoModelForCausalLM.from_pretrained(sep, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    ids = torch.tensor([[1, 5, 7, 3, 11, 2, 9, 4]])
    with torch.no_grad():
        no_adapter = base(ids).logits
    pm = PeftModel.from_pretrained(base, sep + "/adapter")
    n_lora = sum(1 for n, _ in pm.named_parameters() if "lora_A" in n)
    print("lora modules:", n_lora, "scaling:", sorted({v for m in pm.modules() if isinstance(getattr(m, "scaling", None), dict) for v in m.scaling.values()}))
    with torch.no_grad():
        got = pm(ids).logits
        want = ref(ids).logits
    d_with = (got - want).abs().max().item()
    d_without = (no_adapter - want).abs().max().item()
    scale = want.abs().max().item()
    print(f"max |logits diff| with PEFT adapter {d_with:.3g}, without {d_without:.3g} (max |logit| {scale:.3g})")
    assert n_lora > 0
    assert d_with <= 1e-4 * max(scale, 1), d_with
    assert d_without > 100 * d_with, (d_without, d_with)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
