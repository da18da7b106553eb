package pipeline_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
)

// TestFamiliesPipelineEqualsSequential runs the Beam pipeline (Prepare,
// Build, the local runner) on tiny random OPT and Gemma 2 models and checks
// that the pruned weights are bit-identical to prune.RunSequential's on the
// same configuration, as TestPipelineEqualsSequential does for Llama. The
// OPT model is projected (word_embed_proj_dim ≠ hidden, so project_in/out
// exist and must stay dense) and untied; the Gemma 2 model has sliding and
// global layers and soft-capping.
func TestFamiliesPipelineEqualsSequential(t *testing.T) {
	_, corpus := fixture(t)
	for _, tc := range []struct {
		name    string
		opts    func(*tinymodel.Options)
		pattern string
		linears int // per block
	}{
		{"opt-wanda50", func(o *tinymodel.Options) { o.Arch, o.ProjDim, o.Tied = tinymodel.OPT, 32, false }, "", 6},
		{"gemma2-wanda2:4", func(o *tinymodel.Options) { o.Arch, o.SlidingWindow, o.Tied = tinymodel.Gemma2, 8, true }, "2:4", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := tinymodel.Default()
			o.Layers = 2
			tc.opts(&o)
			modelDir := filepath.Join(dir, "model")
			if _, _, err := tinymodel.Write(modelDir, o); err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(modelDir, corpus, filepath.Join(dir, "beam"))
			cfg.Update = prune.UpdateOptima
			if tc.pattern != "" {
				cfg.Pattern, cfg.Sparsity = tc.pattern, 0
			}
			runPipeline(t, cfg)
			seq := cfg
			seq.Out = filepath.Join(dir, "seq")
			runSequential(t, seq)
			got, want := weights(t, cfg.Out), weights(t, seq.Out)
			if d := maxRelDiff(t, got, want); d != 0 {
				t.Errorf("pipeline and sequential weights differ: max relative %g", d)
			}
			// The run pruned every linear of the family to the requested
			// sparsity (the report lists them all) and nothing else: the
			// sparsity audit of the output, which counts the family's
			// linears, reads exactly 50%; OPT's project_in/out stay dense.
			r := readReport(t, cfg.Out)
			if len(r.Linears) != o.Layers*tc.linears {
				t.Errorf("report has %d linears, want %d", len(r.Linears), o.Layers*tc.linears)
			}
			for _, l := range r.Linears {
				if !(l.ErrAfter < l.ErrBefore) {
					t.Errorf("%s: OPTIMA did not lower the error (%g vs %g)", l.Name, l.ErrAfter, l.ErrBefore)
				}
			}
			src, err := loader.Open(cfg.Out)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			sp, err := report.Sparsity(src)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Sparsity != 0.5 || sp.Selection != report.SelectFamily || len(sp.Tensors) != len(r.Linears) || sp.NM24 != (tc.pattern == "2:4") {
				t.Errorf("sparsity audit: %.4f over %d tensors (%s), 2:4 %v; want 0.5 over %d (%s), %v",
					sp.Sparsity, len(sp.Tensors), sp.Selection, sp.NM24, len(r.Linears), report.SelectFamily, tc.pattern == "2:4")
			}
			in := weights(t, modelDir)
			for n, x := range in {
				if slices.ContainsFunc(sp.Tensors, func(ts report.TensorSparsity) bool { return ts.Name == n }) {
					continue
				}
				if !slices.Equal(x.Data, got[n].Data) {
					t.Errorf("%s is not a pruned linear but changed", n)
				}
			}
		})
	}
}
