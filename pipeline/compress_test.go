package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/stages/compress"
	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/quant"
)

// TestCompressPipelineEqualsSequential: with quantization and adapters, the
// Beam pipeline (compression in WriteBlock) writes the same model, adapter
// and report errors as prune.RunSequential, bit for bit; pruned weights stay
// exactly zero and the adapter does not raise any layer's error.
func TestCompressPipelineEqualsSequential(t *testing.T) {
	modelDir, corpus := fixture(t)
	for _, tc := range []struct {
		name     string
		opts     compress.Options
		separate bool
	}{
		{"absmax4", compress.Options{Quant: &quant.Options{Bits: 4, Method: quant.AbsMax}}, false},
		{"slim4-slimlora-separate", compress.Options{Quant: &quant.Options{Bits: 4, Method: quant.SLiM}, LoRA: &lora.Options{Rank: 0.25, Mode: lora.SLiM}, SeparateLoRA: true}, true},
		{"gptq4-group-hessianlora-merged", compress.Options{Quant: &quant.Options{Bits: 4, Method: quant.GPTQ, GroupSize: 8}, LoRA: &lora.Options{Rank: 0.25, Mode: lora.Hessian}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(modelDir, corpus, filepath.Join(dir, "beam"))
			cfg.Pattern, cfg.Sparsity = "2:4", 0
			o := tc.opts
			cfg.Compress = &o
			runPipeline(t, cfg)
			seq := cfg
			seq.Out = filepath.Join(dir, "seq")
			runSequential(t, seq)
			if d := maxRelDiff(t, weights(t, cfg.Out), weights(t, seq.Out)); d != 0 {
				t.Errorf("pipeline and sequential weights differ: max relative %g", d)
			}
			rb, rs := readReport(t, cfg.Out), readReport(t, seq.Out)
			if o.LoRA == nil || o.SeparateLoRA {
				// 2:4 zeros survive quantization (rounding may add more).
				w := weights(t, cfg.Out)
				for _, l := range rb.Linears {
					tw := w[l.Name+".weight"]
					for g := 0; g < len(tw.Data); g += 4 {
						z := 0
						for _, v := range tw.Data[g : g+4] {
							if v == 0 {
								z++
							}
						}
						if z < 2 {
							t.Fatalf("%s group %d: %d zeros, want ≥ 2", l.Name, g/4, z)
						}
					}
				}
			}
			for i, l := range rb.Linears {
				c := l.Compress
				if c == nil || rs.Linears[i].Compress == nil {
					t.Fatalf("%s: no compression report", l.Name)
				}
				if *c != *rs.Linears[i].Compress {
					t.Errorf("%s: pipeline %+v, sequential %+v", l.Name, *c, *rs.Linears[i].Compress)
				}
				if c.Bits != 4 || !(c.Quantized > c.Pruned) || c.Adapter > c.Quantized*(1+1e-9) {
					t.Errorf("%s: compression report %+v", l.Name, *c)
				}
				if o.LoRA != nil && (c.AdapterRank == 0 || !(c.Adapter < c.Quantized)) {
					t.Errorf("%s: adapter did not lower the error: %+v", l.Name, *c)
				}
			}
			// A merged adapter leaves a dense float16 weight: no saving.
			merged := o.LoRA != nil && !o.SeparateLoRA
			if tot := rb.Totals.Compress; tot == nil || tot.Linears != len(rb.Linears) || !(tot.Bytes > 0) || merged != (tot.Bytes == tot.DenseBytes) || tot.Bytes > tot.DenseBytes {
				t.Errorf("compression totals %+v", tot)
			}
			for _, out := range []string{cfg.Out, seq.Out} {
				_, err := os.Stat(filepath.Join(out, prune.AdapterDir, prune.AdapterConfigFile))
				if tc.separate != (err == nil) {
					t.Errorf("%s: adapter directory present = %v, want %v", out, err == nil, tc.separate)
				}
			}
			if tc.separate {
				ab, err := prune.ReadAdapter(filepath.Join(cfg.Out, prune.AdapterDir))
				if err != nil {
					t.Fatal(err)
				}
				as, err := prune.ReadAdapter(filepath.Join(seq.Out, prune.AdapterDir))
				if err != nil {
					t.Fatal(err)
				}
				if len(ab) != 2*len(rb.Linears) {
					t.Fatalf("adapter has %d tensors, want %d", len(ab), 2*len(rb.Linears))
				}
				if d := maxRelDiff(t, ab, as); d != 0 {
					t.Errorf("pipeline and sequential adapters differ: max relative %g", d)
				}
			}
		})
	}
}

// TestCompressShapeRejected: a group size that does not divide a linear is
// refused by Prepare, naming the flag, before any work directory exists.
func TestCompressShapeRejected(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	cfg := baseConfig(modelDir, corpus, filepath.Join(dir, "out"))
	cfg.Compress = &compress.Options{Quant: &quant.Options{Bits: 4, Method: quant.AbsMax, GroupSize: 7}}
	_, err := pipeline.Prepare(&cfg)
	if !errors.Is(err, quant.ErrOptions) {
		t.Fatalf("Prepare: %v, want quant.ErrOptions", err)
	}
	if _, err := os.Stat(cfg.Out + ".work"); !os.IsNotExist(err) {
		t.Errorf("work directory created for a rejected run (%v)", err)
	}
}
