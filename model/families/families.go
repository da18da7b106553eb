// Package families registers every architecture optima supports with
// package model. Import it for its side effect wherever a model is opened
// by configuration alone:
//
//	import _ "github.com/optima-llm/optima/model/families"
package families

import (
	_ "github.com/optima-llm/optima/model/gemma" // Gemma2ForCausalLM, Gemma3ForCausalLM
	_ "github.com/optima-llm/optima/model/llama" // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM
	_ "github.com/optima-llm/optima/model/opt"   // OPTForCausalLM
)
