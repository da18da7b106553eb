package hf

import (
	"errors"
	"testing"

	"github.com/optima-llm/optima/model"
)

func init() {
	RegisterConfigRule("optima_rule_test", ConfigRule{
		Architecture: "RuleTestForCausalLM",
		Defaults:     map[string]any{"hidden_size": 64.0, "num_attention_heads": 4.0},
		Finish: func(c *model.Config, name string) error {
			if v, ok := c.Raw["ffn_dim"].(float64); ok {
				c.IntermediateSize = int(v)
				return nil
			}
			return errors.New(name + ": no ffn_dim")
		},
	})
}

func TestConfigRule(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type":"optima_rule_test","ffn_dim":96,"num_attention_heads":8}`), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Architecture != "RuleTestForCausalLM" || c.HiddenSize != 64 || c.NumAttentionHeads != 8 || c.HeadDim != 8 || c.IntermediateSize != 96 {
		t.Errorf("got arch %q hidden %d heads %d head_dim %d intermediate %d; want RuleTestForCausalLM 64 8 8 96",
			c.Architecture, c.HiddenSize, c.NumAttentionHeads, c.HeadDim, c.IntermediateSize)
	}
	if _, err := ParseConfig([]byte(`{"model_type":"optima_rule_test"}`), "config.json"); err == nil {
		t.Error("Finish's error was dropped")
	}
}
