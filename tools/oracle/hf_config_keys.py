"""Keys of transformers' config classes, for model/hf's ConfigJSON tests.

  python3 tools/oracle/hf_config_keys.py > model/hf/testdata/config_keys.json

Writes, per config class (OPTConfig, Gemma2Config, Gemma3TextConfig,
LlamaConfig), the sorted keys of Class().to_dict() with transformers 5.24:
the keys that class reads from and writes to config.json. model/hf's
TestConfigJSONFamilyKeys checks that ConfigJSON writes no other keys for
that model_type (besides torch_dtype, which transformers v5 reads as dtype).
"""
import json

import transformers
from transformers import Gemma2Config, Gemma3TextConfig, LlamaConfig, OPTConfig

out = {"transformers": transformers.__version__}
for cls in (OPTConfig, Gemma2Config, Gemma3TextConfig, LlamaConfig):
    out[cls.__name__] = sorted(cls().to_dict().keys())
print(json.dumps(out, indent=1))
