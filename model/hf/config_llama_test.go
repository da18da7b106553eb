package hf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

func TestVariantConfigDefaults(t *testing.T) {
	ignoreRaw := cmpopts.IgnoreFields(model.Config{}, "Raw")
	for _, tc := range []struct {
		name    string
		json    string
		want    model.Config
		wantRaw map[string]any
	}{
		{"mistral defaults", `{"model_type":"mistral"}`, model.Config{Architecture: "MistralForCausalLM", ModelType: "mistral",
			HiddenSize: 4096, IntermediateSize: 14336, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 8,
			HeadDim: 128, VocabSize: 32000, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-6, RopeTheta: 10000,
			HiddenAct: "silu", BOSTokenID: 1, EOSTokenID: 2}, map[string]any{"sliding_window": 4096.0}},
		{"mistral null window, explicit head_dim", `{"model_type":"mistral","sliding_window":null,"head_dim":96,"num_key_value_heads":null}`,
			model.Config{Architecture: "MistralForCausalLM", ModelType: "mistral",
				HiddenSize: 4096, IntermediateSize: 14336, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 32,
				HeadDim: 96, VocabSize: 32000, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-6, RopeTheta: 10000,
				HiddenAct: "silu", BOSTokenID: 1, EOSTokenID: 2}, map[string]any{"sliding_window": nil}},
		{"qwen2 defaults", `{"model_type":"qwen2"}`, model.Config{Architecture: "Qwen2ForCausalLM", ModelType: "qwen2",
			HiddenSize: 4096, IntermediateSize: 22016, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 32,
			HeadDim: 128, VocabSize: 151936, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 10000,
			HiddenAct: "silu", BOSTokenID: -1, EOSTokenID: -1},
			map[string]any{"use_sliding_window": false, "sliding_window": 4096.0, "max_window_layers": 28.0}},
		{"qwen2.5 style", `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":896,"num_attention_heads":14,
			"num_key_value_heads":2,"rope_theta":1000000.0,"use_sliding_window":false,"sliding_window":32768,"max_window_layers":21,
			"tie_word_embeddings":true,"bos_token_id":151643,"eos_token_id":151645}`,
			model.Config{Architecture: "Qwen2ForCausalLM", ModelType: "qwen2",
				HiddenSize: 896, IntermediateSize: 22016, NumHiddenLayers: 32, NumAttentionHeads: 14, NumKeyValueHeads: 2,
				HeadDim: 64, VocabSize: 151936, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 1e6,
				TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: 151643, EOSTokenID: 151645},
			map[string]any{"use_sliding_window": false, "sliding_window": 32768.0, "max_window_layers": 21.0}},
		{"llama3 rope", `{"model_type":"llama","rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,
			"high_freq_factor":4.0,"original_max_position_embeddings":8192},"rope_theta":500000.0}`,
			model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama",
				HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 32,
				HeadDim: 128, VocabSize: 32000, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, RopeTheta: 500000,
				HiddenAct: "silu", BOSTokenID: 1, EOSTokenID: 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, got, ignoreRaw); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for k, v := range tc.wantRaw {
				if got.Raw[k] != v {
					t.Errorf("Raw[%s] = %v, want %v", k, got.Raw[k], v)
				}
			}
		})
	}
}

func TestRopeTypeErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"model_type":"llama","rope_scaling":{"type":"yarn","factor":4.0}}`, `rope_scaling rope_type yarn is not supported`},
		{`{"model_type":"mistral","rope_parameters":{"rope_type":"dynamic","factor":4.0}}`, `rope_parameters rope_type dynamic`},
		{`{"model_type":"qwen2","rope_scaling":{"rope_type":"longrope"}}`, `rope_type longrope`},
		{`{"model_type":"llama","rope_scaling":[1]}`, `want an object`},
		{`{"model_type":"qwen2","use_sliding_window":"yes"}`, `use_sliding_window`},
	} {
		_, err := ParseConfig([]byte(tc.json), "/m/config.json")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/m/config.json") {
			t.Errorf("%s: error %v, want ErrConfig naming /m/config.json and containing %q", tc.json, err, tc.want)
		}
	}
}

// writeDir writes config.json and the tensors of ts (name → shape) into a
// fresh directory, as one file or as shards of at most perShard tensors
// with an index.
func writeDir(t *testing.T, cfgJSON string, ts map[string][]int, perShard int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range ts {
		names = append(names, n)
	}
	var tensors []*model.Tensor
	for _, n := range sortedCopy(names) {
		tt := &model.Tensor{Name: n, Shape: ts[n]}
		tt.Data = make([]float32, tt.Numel())
		tensors = append(tensors, tt)
	}
	if perShard <= 0 {
		if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleName), tensors, safetensors.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	idx := `{"weight_map":{`
	for i := 0; i < len(tensors); i += perShard {
		fn := "s" + string(rune('a'+i/perShard)) + ".safetensors"
		part := tensors[i:min(i+perShard, len(tensors))]
		if err := safetensors.WriteFile(filepath.Join(dir, fn), part, safetensors.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range part {
			if !strings.HasSuffix(idx, "{") {
				idx += ","
			}
			idx += `"` + tt.Name + `":"` + fn + `"`
		}
	}
	if err := os.WriteFile(filepath.Join(dir, safetensors.IndexName), []byte(idx+"}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

const tinyQwen2 = `{"model_type":"qwen2","hidden_size":8,"intermediate_size":12,"num_hidden_layers":1,
	"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":5}`

func tinyQwen2Shapes() map[string][]int {
	return map[string][]int{
		"model.embed_tokens.weight": {5, 8}, "lm_head.weight": {5, 8}, "model.norm.weight": {8},
		"model.layers.0.input_layernorm.weight": {8}, "model.layers.0.post_attention_layernorm.weight": {8},
		"model.layers.0.self_attn.q_proj.weight": {8, 8}, "model.layers.0.self_attn.q_proj.bias": {8},
		"model.layers.0.self_attn.k_proj.weight": {4, 8}, "model.layers.0.self_attn.k_proj.bias": {4},
		"model.layers.0.self_attn.v_proj.weight": {4, 8}, "model.layers.0.self_attn.v_proj.bias": {4},
		"model.layers.0.self_attn.o_proj.weight": {8, 8},
		"model.layers.0.mlp.gate_proj.weight":    {12, 8}, "model.layers.0.mlp.up_proj.weight": {12, 8},
		"model.layers.0.mlp.down_proj.weight": {8, 12},
	}
}

func TestOpenShardedAndShapeErrors(t *testing.T) {
	for _, per := range []int{0, 4} {
		d, err := Open(writeDir(t, tinyQwen2, tinyQwen2Shapes(), per))
		if err != nil {
			t.Fatalf("%d per shard: %v", per, err)
		}
		if got := len(d.Names()); got != len(tinyQwen2Shapes()) {
			t.Errorf("%d per shard: %d tensors", per, got)
		}
		ts, err := d.Load("model.layers.0.self_attn.k_proj.bias")
		if err != nil || len(ts.Data) != 4 {
			t.Errorf("load bias: %v %v", ts, err)
		}
		d.Close()
	}
	for _, tc := range []struct {
		name   string
		edit   func(m map[string][]int)
		per    int
		remove string
		want   string
	}{
		{"k_proj rows", func(m map[string][]int) { m["model.layers.0.self_attn.k_proj.weight"] = []int{8, 8} }, 0, "",
			`tensor "model.layers.0.self_attn.k_proj.weight" has shape [8 8], config.json (hidden_size 8, num_attention_heads 2, num_key_value_heads 1, head_dim 4) gives [4 8]`},
		{"down_proj", func(m map[string][]int) { m["model.layers.0.mlp.down_proj.weight"] = []int{12, 8} }, 4, "", `"model.layers.0.mlp.down_proj.weight" has shape [12 8]`},
		{"bias", func(m map[string][]int) { m["model.layers.0.self_attn.q_proj.bias"] = []int{4} }, 0, "", `q_proj.bias" has shape [4]`},
		{"vocab", func(m map[string][]int) { m["lm_head.weight"] = []int{6, 8} }, 0, "", `vocab_size 5`},
		{"layer", func(m map[string][]int) { m["model.layers.1.input_layernorm.weight"] = []int{8} }, 0, "", `layer 1 is outside num_hidden_layers 1`},
		{"missing shard", func(map[string][]int) {}, 4, "sb.safetensors", `shard sb.safetensors (holding tensor`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyQwen2Shapes()
			tc.edit(m)
			dir := writeDir(t, tinyQwen2, m, tc.per)
			if tc.remove != "" {
				os.Remove(filepath.Join(dir, tc.remove))
			}
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %v, want one naming %s and containing %q", err, dir, tc.want)
			}
		})
	}
}

func TestParseIndexErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"weight_map":{}}`, "no weight_map"},
		{`{"metadata":{}}`, "no weight_map"},
		{`{"weight_map":{"a":"x.bin"}}`, "invalid file name"},
		{`{"weight_map":{"a":"d\\x.safetensors"}}`, "invalid file name"},
		{`{"weight_map":[1]}`, "cannot unmarshal"},
	} {
		if _, err := ParseIndex([]byte(tc.json), "idx.json"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "idx.json") {
			t.Errorf("%s: error %v, want %q", tc.json, err, tc.want)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"../x.safetensors"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseIndex(b, "idx")
		if err != nil {
			return
		}
		for name, fn := range m {
			if fn != filepath.Base(fn) || strings.ContainsAny(fn, `/\`) || !strings.HasSuffix(fn, ".safetensors") || strings.HasPrefix(fn, ".") {
				t.Fatalf("tensor %q: accepted shard name %q", name, fn)
			}
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(tinyQwen2))
	f.Add([]byte(`{"model_type":"mistral","sliding_window":null,"rope_scaling":{"type":"linear","factor":2}}`))
	f.Add([]byte(`{"model_type":"llama","rope_parameters":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "config.json")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
			t.Fatalf("accepted heads %d / kv %d", c.NumAttentionHeads, c.NumKeyValueHeads)
		}
		if _, err := ConfigJSON(c, ""); err != nil {
			t.Fatalf("ConfigJSON: %v", err)
		}
	})
}
