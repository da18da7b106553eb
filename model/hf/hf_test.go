package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/safetensors"
)

func TestParseConfig(t *testing.T) {
	ignoreRaw := cmpopts.IgnoreFields(model.Config{}, "Raw")
	for _, tc := range []struct {
		name string
		json string
		want model.Config
	}{
		{"llama defaults", `{"model_type":"llama"}`, model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama",
			HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32, NumAttentionHeads: 32, NumKeyValueHeads: 32,
			HeadDim: 128, VocabSize: 32000, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, RopeTheta: 10000,
			HiddenAct: "silu", BOSTokenID: 1, EOSTokenID: 2}},
		{"smollm2", `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":576,"intermediate_size":1536,
			"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"rms_norm_eps":1e-05,
			"rope_theta":100000,"tie_word_embeddings":true,"max_position_embeddings":8192,"bos_token_id":1,"eos_token_id":2,
			"hidden_act":"silu","rope_scaling":null}`,
			model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenSize: 576, IntermediateSize: 1536,
				NumHiddenLayers: 30, NumAttentionHeads: 9, NumKeyValueHeads: 3, HeadDim: 64, VocabSize: 49152,
				MaxPositionEmbeddings: 8192, RMSNormEps: 1e-5, RopeTheta: 100000, TieWordEmbeddings: true, HiddenAct: "silu",
				BOSTokenID: 1, EOSTokenID: 2}},
		{"v5 rope_parameters, eos list, null bos", `{"model_type":"llama","hidden_size":64,"num_attention_heads":2,
			"num_key_value_heads":1,"head_dim":48,"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},
			"eos_token_id":[128001,128009],"bos_token_id":null,"attention_bias":true,"mlp_bias":true}`,
			model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenSize: 64, IntermediateSize: 11008,
				NumHiddenLayers: 32, NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDim: 48, VocabSize: 32000,
				MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, RopeTheta: 500000, HiddenAct: "silu", AttentionBias: true,
				MLPBias: true, BOSTokenID: -1, EOSTokenID: 128001}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, got, ignoreRaw); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// ConfigJSON → ParseConfig is the identity on the typed fields.
			b, err := ConfigJSON(got, "float32")
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(b, "again")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, back, ignoreRaw); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct{ name, json, want string }{
		{"syntax", `{"model_type":`, "unexpected end"},
		{"array", `[]`, "cannot unmarshal"},
		{"no arch", `{"model_type":"mamba"}`, `unknown model_type "mamba"`},
		{"type", `{"model_type":"llama","hidden_size":"big"}`, "hidden_size"},
		{"fraction", `{"model_type":"llama","hidden_size":1.5}`, "hidden_size"},
		{"heads", `{"model_type":"llama","num_attention_heads":6,"num_key_value_heads":4}`, "6 attention heads"},
		{"eos", `{"model_type":"llama","eos_token_id":"x"}`, "eos_token_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json), "cfg.json")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cfg.json") {
				t.Errorf("error %v, want ErrConfig naming cfg.json and containing %q", err, tc.want)
			}
		})
	}
}

func tinyConfig() *model.Config {
	return &model.Config{Architecture: "LlamaForCausalLM", ModelType: "llama", HiddenSize: 16, IntermediateSize: 32,
		NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDim: 8, VocabSize: 10,
		MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu", TieWordEmbeddings: true,
		BOSTokenID: 1, EOSTokenID: 2}
}

func tinyTensors(rng *rand.Rand) map[string]*model.Tensor {
	shapes := map[string][]int{
		"model.embed_tokens.weight":                      {10, 16},
		"model.norm.weight":                              {16},
		"model.layers.0.input_layernorm.weight":          {16},
		"model.layers.0.post_attention_layernorm.weight": {16},
		"model.layers.0.self_attn.q_proj.weight":         {16, 16},
		"model.layers.0.self_attn.k_proj.weight":         {8, 16},
		"model.layers.0.self_attn.v_proj.weight":         {8, 16},
		"model.layers.0.self_attn.o_proj.weight":         {16, 16},
		"model.layers.0.mlp.gate_proj.weight":            {32, 16},
		"model.layers.0.mlp.up_proj.weight":              {32, 16},
		"model.layers.0.mlp.down_proj.weight":            {16, 32},
	}
	out := map[string]*model.Tensor{}
	for n, s := range shapes {
		t := &model.Tensor{Name: n, Shape: s}
		t.Data = make([]float32, t.Numel())
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
		out[n] = t
	}
	return out
}

func loader(ts map[string]*model.Tensor) ([]string, func(string) (*model.Tensor, error)) {
	var names []string
	for n := range ts {
		names = append(names, n)
	}
	return names, func(n string) (*model.Tensor, error) {
		t, ok := ts[n]
		if !ok {
			return nil, fmt.Errorf("no %s", n)
		}
		return t, nil
	}
}

func TestWriteModelRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   WriteOptions
		shards int
	}{{"single", WriteOptions{}, 0}, {"sharded", WriteOptions{MaxShardBytes: 1500}, 5}, {"bf16", WriteOptions{DType: safetensors.BF16, MaxShardBytes: -1}, 0},
		{"f16 sharded", WriteOptions{DType: safetensors.F16, MaxShardBytes: 800}, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			ts := tinyTensors(rng)
			names, load := loader(ts)
			dir := filepath.Join(t.TempDir(), "out")
			extra := map[string][]byte{"tokenizer.json": []byte(`{"model":{}}`)}
			if err := WriteModel(dir, tinyConfig(), names, load, extra, tc.opts); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(filepath.Dir(dir))
			if len(entries) != 1 {
				t.Errorf("parent holds %d entries, want only the model dir", len(entries))
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "tokenizer.json")); string(b) != `{"model":{}}` {
				t.Errorf("tokenizer.json = %q", b)
			}
			_, idxErr := os.Stat(filepath.Join(dir, safetensors.IndexName))
			if (idxErr == nil) != (tc.shards > 0) {
				t.Errorf("index present = %v, want %v", idxErr == nil, tc.shards > 0)
			}
			var raw map[string]any
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
				"num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps", "rope_theta",
				"tie_word_embeddings", "hidden_act", "max_position_embeddings", "torch_dtype", "bos_token_id", "eos_token_id"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("config.json lacks %s", k)
				}
			}
			src, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if diff := cmp.Diff(tinyConfig(), src.Config(), cmpopts.IgnoreFields(model.Config{}, "Raw")); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if len(src.Names()) != len(ts) {
				t.Errorf("%d names, want %d", len(src.Names()), len(ts))
			}
			tol := 0.0
			switch tc.opts.DType {
			case safetensors.BF16:
				tol = 1.0 / 128
			case safetensors.F16:
				tol = 1.0 / 1024
			}
			for _, n := range src.Names() {
				got, err := src.Load(n)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(ts[n], got, cmpopts.EquateApprox(tol, 0)); diff != "" {
					t.Errorf("%s: %s", n, diff)
				}
			}
			if _, err := src.Tokenizer(); err == nil || !strings.Contains(err.Error(), dir+": tokenizer.json: model: no vocab") {
				t.Errorf("tokenizer: %v", err)
			}
		})
	}
}

func TestWriteModelReplace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts := tinyTensors(rng)
	names, load := loader(ts)
	dir := filepath.Join(t.TempDir(), "m")
	if err := WriteModel(dir, tinyConfig(), names, load, map[string][]byte{"old.txt": []byte("x")}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A failing load leaves the old directory untouched and no temporaries.
	boom := func(n string) (*model.Tensor, error) {
		if strings.Contains(n, "mlp") {
			return nil, errors.New("boom")
		}
		return load(n)
	}
	if err := WriteModel(dir, tinyConfig(), names, boom, nil, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old.txt")); err != nil {
		t.Errorf("old directory damaged: %v", err)
	}
	// A successful rewrite replaces the directory as a whole.
	cfg := tinyConfig()
	cfg.TieWordEmbeddings = false
	if err := WriteModel(dir, cfg, names, load, nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old.txt")); !os.IsNotExist(err) {
		t.Errorf("old.txt survived the rewrite: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("parent holds %d entries", len(entries))
	}
	got, err := ReadConfig(filepath.Join(dir, "config.json"))
	if err != nil || got.TieWordEmbeddings {
		t.Errorf("rewritten config %+v, %v", got, err)
	}
}

func TestWriteModelErrors(t *testing.T) {
	names, load := loader(tinyTensors(rand.New(rand.NewPCG(5, 6))))
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		name, dir string
		extra     map[string][]byte
		opts      WriteOptions
		want      string
	}{
		{"missing parent", filepath.Join(base, "nope", "m"), nil, WriteOptions{}, "cannot create a directory in " + filepath.Join(base, "nope")},
		{"parent is a file", filepath.Join(file, "m"), nil, WriteOptions{}, "cannot create a directory in " + file},
		{"dir is a file", file, nil, WriteOptions{}, "not a directory"},
		{"extra path", filepath.Join(base, "m"), map[string][]byte{"../x": nil}, WriteOptions{}, `invalid extra file name "../x"`},
		{"dtype", filepath.Join(base, "m"), nil, WriteOptions{DType: "I8"}, `cannot write dtype "I8"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteModel(tc.dir, tinyConfig(), names, load, tc.extra, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(base); len(entries) != 1 {
		t.Errorf("failed writes left %d entries in %s", len(entries), base)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no config: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`), 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "neither model.safetensors") {
		t.Errorf("no weights: %v", err)
	}
	os.WriteFile(filepath.Join(dir, safetensors.IndexName), []byte(`{"weight_map":{"a":"../x.safetensors"}}`), 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "invalid file name") {
		t.Errorf("bad index: %v", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "s1.safetensors"), []*model.Tensor{{Name: "b", Shape: []int{1}, Data: []float32{1}}}, safetensors.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, safetensors.IndexName), []byte(`{"weight_map":{"a":"s1.safetensors"}}`), 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), `tensor "a" is not in s1.safetensors`) {
		t.Errorf("missing tensor: %v", err)
	}
}

// TestWriteOracleDir converts model/gguf's gguf-py fixture (or the GGUF file
// $OPTIMA_HF_ORACLE_GGUF) to a Hugging Face directory at
// $OPTIMA_HF_ORACLE_DIR for tools/oracle/hf_load_check.py.
func TestWriteOracleDir(t *testing.T) {
	out := os.Getenv("OPTIMA_HF_ORACLE_DIR")
	if out == "" {
		t.Skip("OPTIMA_HF_ORACLE_DIR not set")
	}
	in := os.Getenv("OPTIMA_HF_ORACLE_GGUF")
	if in == "" {
		in = "../gguf/testdata/tiny_llama.gguf"
	}
	src, err := gguf.OpenModel(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	limit := int64(8000)
	if os.Getenv("OPTIMA_HF_ORACLE_GGUF") != "" {
		limit = 0
	}
	if err := WriteModel(out, src.Config(), src.Names(), src.Load, nil, WriteOptions{MaxShardBytes: limit}); err != nil {
		t.Fatal(err)
	}
}
