package opt_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
)

// FuzzParseConfigOPT feeds config.json bytes through hf.ParseConfig (the
// "opt" rule) and model.New: neither may panic, and a config both accept
// survives hf.ConfigJSON and a second parse with the same fields.
func FuzzParseConfigOPT(f *testing.F) {
	for _, v := range variants {
		b, err := os.ReadFile(filepath.Join("testdata", v, "config.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model_type":"opt"}`))
	f.Add([]byte(`{"model_type":"opt","word_embed_proj_dim":null,"ffn_dim":8,"hidden_size":8,"num_attention_heads":2}`))
	f.Add([]byte(`{"model_type":"opt","activation_function":"gelu","_remove_final_layer_norm":true,"num_hidden_layers":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := hf.ParseConfig(b, "config.json")
		if err != nil {
			return
		}
		if _, err := model.New(c); err != nil || c.ModelType != "opt" {
			return
		}
		out, err := hf.ConfigJSON(c, "float32")
		if err != nil {
			return // e.g. a NaN that encoding/json cannot write
		}
		c2, err := hf.ParseConfig(out, "config.json")
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if diff := cmp.Diff(c, c2, cmpopts.IgnoreFields(model.Config{}, "Raw")); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}
