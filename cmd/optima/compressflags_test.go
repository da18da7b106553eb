package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
)

// TestCompressFlagErrors: nonsense combinations of the quantization and
// adapter flags are refused before any work, with a message naming why.
func TestCompressFlagErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"bits too low", []string{"--bits", "1"}, "outside 2..8"},
		{"bits too high", []string{"--bits", "9"}, "outside 2..8"},
		{"unknown quantizer", []string{"--bits", "4", "--quant", "nf4"}, "not one of absmax, slim, gptq"},
		{"quant without bits", []string{"--quant", "slim"}, "--quant: quantization options need --bits"},
		{"group without bits", []string{"--group-size", "32"}, "need --bits"},
		{"slim with groups", []string{"--bits", "4", "--quant", "slim", "--group-size", "16"}, "does not combine with --group-size"},
		{"group does not divide", []string{"--bits", "4", "--group-size", "7"}, "does not divide"},
		{"rank above 1", []string{"--lora-rank", "1.5"}, "outside (0, 1]"},
		{"negative rank", []string{"--lora-rank", "-0.1"}, "outside (0, 1]"},
		{"separate without rank", []string{"--separate-lora"}, "adapter options need --lora-rank"},
		{"slim-lora without rank", []string{"--slim-lora"}, "adapter options need --lora-rank"},
		{"slim-lora contradicts fit", []string{"--lora-rank", "0.1", "--slim-lora", "--lora-fit", "svd"}, "contradicts --lora-fit svd"},
		{"unknown fit", []string{"--lora-rank", "0.1", "--lora-fit", "qr"}, "not one of svd, slim, hessian"},
		{"prune-lora without 2:4", []string{"--lora-rank", "0.1", "--prune-lora"}, "needs --pattern 2:4"},
		{"prune-lora with hessian fit", []string{"--lora-rank", "0.1", "--prune-lora", "--lora-fit", "hessian"}, "needs --lora-fit svd or slim"},
		{"quantize-lora without bits", []string{"--lora-rank", "0.1", "--quantize-lora", "--lora-tile-size", "8"}, "needs --bits"},
		{"quantize-lora without tile", []string{"--bits", "4", "--lora-rank", "0.1", "--quantize-lora"}, "need a positive tile size"},
		{"pad without tile", []string{"--lora-rank", "0.1", "--pad-lora"}, "need a positive tile size"},
		{"tile alone", []string{"--lora-rank", "0.1", "--lora-tile-size", "8"}, "does nothing without --pad-lora"},
		{"lora tile does not divide", []string{"--bits", "4", "--lora-rank", "0.1", "--quantize-lora", "--lora-tile-size", "7"}, "does not divide"},
		{"sweep quantization without --quant gptq", []string{"--method", "sparsegpt", "--method-param", "bits=4"}, "quantize inside SparseGPT's sweep"},
		{"joint group and blocksize", []string{"--method", "sparsegpt", "--update", "own", "--bits", "4", "--quant", "gptq", "--group-size", "32", "--method-param", "blocksize=48"}, "must divide one another"},
		{"joint group and default blocksize", []string{"--method", "sparsegpt", "--update", "own", "--bits", "4", "--quant", "gptq", "--group-size", "48"}, "--group-size 48"},
		{"joint sweep bits given twice", []string{"--method", "sparsegpt", "--update", "own", "--bits", "4", "--quant", "gptq", "--method-param", "bits=3"}, "--method-param bits=3"},
		{"joint sweep group given twice", []string{"--method", "sparsegpt", "--update", "own", "--bits", "4", "--quant", "gptq", "--method-param", "group_size=16"}, "--method-param group_size=16"},
		{"joint sweep scale given twice", []string{"--method", "sparsegpt", "--update", "own", "--bits", "4", "--quant", "gptq", "--method-param", "scale_important=true"}, "--method-param scale_important=true"},
		{"shift with magnitude", []string{"--shift-zero-metrics", "--method", "magnitude"}, "changes only Wanda's score"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, _, err := optima(t, f.pruneArgs(out, tc.extra...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if _, err := os.Stat(out + ".work"); !os.IsNotExist(err) {
				t.Errorf("a rejected run left %s.work (%v)", out, err)
			}
		})
	}
}

// TestReferenceTableInREADME: README.md's table lists every reference
// parameter of referenceParams with the same optima flag, and the flags
// exist on the prune command.
func TestReferenceTableInREADME(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	cmd := newPruneCmd()
	seen := map[string]bool{}
	for _, p := range referenceParams {
		if seen[p.Ref] {
			t.Errorf("%s listed twice", p.Ref)
		}
		seen[p.Ref] = true
		row := "| `" + p.Ref + "` | `" + p.Flag + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md lacks the row %q", row)
		}
		name := strings.TrimPrefix(strings.Fields(p.Flag)[0], "--")
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("%s maps to %s, which optima prune does not have", p.Ref, p.Flag)
		}
	}
	for _, ref := range []string{"bitwidth", "slim_quant", "weight_tiled_quantization", "weight_tile_size", "quantize_weight",
		"scale_important_weights", "lora_rank", "slim_lora", "prune_lora", "quantize_lora", "lora_tile_size", "separate_lora",
		"pad_lora", "prune_method", "sparsity_ratio", "sparsity_type", "update_weights", "use_qp_solver", "double_precision",
		"skip_attention", "nsamples", "seed", "calibration_dataset", "shift_zero_metrics"} {
		if !seen[ref] {
			t.Errorf("reference parameter %s is not mapped", ref)
		}
	}
}

// TestSeparateAdapterEval: a run with --separate-lora writes a PEFT adapter
// directory next to the model, eval merges it (the perplexity equals that
// of the same run with the adapter merged at prune time, and differs from
// the model without its adapter), and report.json carries the compression.
func TestSeparateAdapterEval(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	comp := []string{"--bits", "4", "--quant", "slim", "--lora-rank", "0.5", "--slim-lora"}
	sep, merged := filepath.Join(dir, "sep"), filepath.Join(dir, "merged")
	mustOptima(t, f.pruneArgs(sep, append(comp, "--separate-lora")...)...)
	mustOptima(t, f.pruneArgs(merged, comp...)...)
	raw, err := os.ReadFile(filepath.Join(sep, prune.AdapterDir, prune.AdapterConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var ac prune.AdapterConfig
	if err := json.Unmarshal(raw, &ac); err != nil {
		t.Fatal(err)
	}
	if ac.PeftType != "LORA" || ac.R <= 0 || ac.LoraAlpha != ac.R || len(ac.TargetModules) != 7 || ac.BaseModelNameOrPath != sep {
		t.Errorf("adapter_config.json: %+v", ac)
	}
	ad, err := prune.ReadAdapter(filepath.Join(sep, prune.AdapterDir))
	if err != nil {
		t.Fatal(err)
	}
	for n, ta := range ad {
		mod, ok := strings.CutSuffix(n, prune.LoraASuffix)
		if !ok {
			continue
		}
		if r := ac.RankPattern[mod]; ta.Shape[0] != r {
			t.Errorf("%s: rank %d, rank_pattern %d", n, ta.Shape[0], r)
		}
	}
	ppl := func(model string) float64 {
		stdout, _ := mustOptima(t, "eval", "--model", model, "--seqlen", "32", "--data-dir", f.data, "--json", "--no-progress")
		var r evalResult
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r.Perplexity
	}
	pSep, pMerged := ppl(sep), ppl(merged)
	if pSep != pMerged {
		t.Errorf("perplexity with the separate adapter merged on load %v, merged at prune time %v", pSep, pMerged)
	}
	if err := os.RemoveAll(filepath.Join(sep, prune.AdapterDir)); err != nil {
		t.Fatal(err)
	}
	if pNo := ppl(sep); pNo == pSep {
		t.Errorf("removing the adapter left the perplexity at %v", pNo)
	}
	raw, err = os.ReadFile(filepath.Join(sep, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Linears []struct {
			Compress *struct {
				Bits        int     `json:"bits"`
				AdapterRank int     `json:"adapter_rank"`
				Quantized   float64 `json:"err_quantized"`
				Adapter     float64 `json:"err_adapter"`
			} `json:"compress"`
		} `json:"linears"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	for i, l := range rep.Linears {
		if c := l.Compress; c == nil || c.Bits != 4 || c.AdapterRank == 0 || !(c.Adapter < c.Quantized) {
			t.Errorf("linear %d: compression report %+v", i, c)
		}
	}
}

// TestSparseGPTWithGPTQ: SparseGPT's own update followed by GPTQ on its
// mask (--method sparsegpt --update own --quant gptq) keeps the model 2:4
// and, in block 0 (the same inputs in both runs), quantizes every linear
// with a lower layer error than round-to-nearest on the same AbsMax grid.
func TestSparseGPTWithGPTQ(t *testing.T) {
	f := newFixture(t)
	errs := map[string]map[string]float64{}
	for _, tc := range []struct {
		quant, update string
		joint         bool
	}{
		{"gptq", "own", true},
		{"absmax", "own", false},
		{"gptq", "optima", false},
	} {
		key := tc.quant + "/" + tc.update
		out := filepath.Join(t.TempDir(), tc.quant+"-"+tc.update)
		args := f.patternArgs(out, "2:4")
		args[indexOf(args, "--method")+1] = "sparsegpt"
		args[indexOf(args, "--update")+1] = tc.update
		mustOptima(t, append(args, "--bits", "4", "--quant", tc.quant)...)
		stdout, _ := mustOptima(t, "sparsity", "--model", out, "--json")
		var sp report.SparsityReport
		if err := json.Unmarshal([]byte(stdout), &sp); err != nil {
			t.Fatal(err)
		}
		if !sp.NM24 {
			t.Errorf("%s: model is not 2:4 after quantization", key)
		}
		raw, err := os.ReadFile(filepath.Join(out, prune.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Config  prune.Config          `json:"config"`
			Linears []report.LinearReport `json:"linears"`
		}
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		// The joint mode: SparseGPT's sweep quantizes (its selector gets
		// bits=4) and compress runs no second GPTQ sweep.
		if got := rep.Config.Compress != nil && rep.Config.Compress.JointSweep; got != tc.joint {
			t.Errorf("%s: joint sweep %v, want %v", key, got, tc.joint)
		}
		if got := rep.Config.MethodParams["bits"]; (got == "4") != tc.joint {
			t.Errorf("%s: selector parameter bits = %q (joint %v)", key, got, tc.joint)
		}
		errs[key] = map[string]float64{}
		for _, l := range rep.Linears {
			c := l.Compress
			if c == nil || c.Bits != 4 || c.Quantized <= 0 {
				t.Fatalf("%s, %s: compression report %+v", key, l.Name, c)
			}
			// One sweep: no pruning-only error to report.
			if tc.joint && c.Pruned != c.Quantized || !tc.joint && !(c.Quantized > c.Pruned) {
				t.Errorf("%s, %s: err_pruned %g, err_quantized %g", key, l.Name, c.Pruned, c.Quantized)
			}
			if strings.Contains(l.Name, ".layers.0.") {
				errs[key][l.Name] = c.Quantized
			}
		}
	}
	if len(errs["gptq/own"]) != 7 {
		t.Fatalf("block 0 has %d linears in the report, want 7", len(errs["gptq/own"]))
	}
	for n, g := range errs["gptq/own"] {
		if a := errs["absmax/own"][n]; !(g < a) {
			t.Errorf("%s: joint SparseGPT+GPTQ error %g not below SparseGPT then round-to-nearest %g", n, g, a)
		}
	}
}

// TestEvalWithoutAdapter: eval of models without an adapter directory (a
// GGUF file, a Hugging Face directory) scores them as they are; looking for
// MODEL/adapter under a file is not an error.
func TestEvalWithoutAdapter(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 4)
	gguf := filepath.Join(t.TempDir(), "tiny.gguf")
	o := tinymodel.Default()
	o.Layers = 2
	if _, _, err := tinymodel.WriteGGUF(gguf, o); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, model string }{{"gguf", gguf}, {"hf", f.model}} {
		for _, task := range []string{"wikitext2", "arc_easy"} {
			t.Run(tc.name+"/"+task, func(t *testing.T) {
				args := []string{"eval", "--model", tc.model, "--task", task, "--data-dir", f.data, "--no-progress"}
				if task != "wikitext2" {
					args = append(args, "--limit", "2")
				} else {
					args = append(args, "--seqlen", "32")
				}
				_, stderr := mustOptima(t, args...)
				if strings.Contains(stderr, "merging the adapter") {
					t.Errorf("eval of %s merged an adapter: %s", tc.model, stderr)
				}
			})
		}
	}
}

// TestAdapterMismatch: an adapter directory whose tensors do not all merge
// into the model (a module the model lacks, B without A, a tensor that is
// not lora_A/lora_B) is an error naming the tensor, not an evaluation that
// leaves them out while it says "merging the adapter"; a matching one
// merges.
func TestAdapterMismatch(t *testing.T) {
	f := newFixture(t)
	const q = "model.layers.0.self_attn.q_proj" // [64, 64] in tinymodel.Default
	a := func(name string, rows, cols int) *model.Tensor {
		d := make([]float32, rows*cols)
		for i := range d {
			d[i] = 0.01 * float32(i%7-3)
		}
		return &model.Tensor{Name: "base_model.model." + name, Shape: []int{rows, cols}, Data: d}
	}
	for _, tc := range []struct {
		name    string
		tensors []*model.Tensor
		want    string // "": success
	}{
		{"matching", []*model.Tensor{a(q+".lora_A.weight", 2, 64), a(q+".lora_B.weight", 64, 2)}, ""},
		{"module not in the model", []*model.Tensor{a(q+".lora_A.weight", 2, 64), a(q+".lora_B.weight", 64, 2),
			a("model.layers.7.mlp.up_proj.lora_A.weight", 2, 64), a("model.layers.7.mlp.up_proj.lora_B.weight", 128, 2)}, "model.layers.7.mlp.up_proj"},
		{"B without A", []*model.Tensor{a(q+".lora_A.weight", 2, 64), a(q+".lora_B.weight", 64, 2),
			a("model.layers.1.self_attn.k_proj.lora_B.weight", 32, 2)}, "model.layers.1.self_attn.k_proj.lora_B.weight"},
		{"not a LoRA weight", []*model.Tensor{a(q+".lora_A.weight", 2, 64), a(q+".lora_B.weight", 64, 2),
			a("model.embed_tokens.lora_embedding_A", 2, 320)}, "model.embed_tokens.lora_embedding_A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			if err := os.CopyFS(dir, os.DirFS(f.model)); err != nil {
				t.Fatal(err)
			}
			ad := filepath.Join(dir, prune.AdapterDir)
			if err := os.MkdirAll(ad, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := safetensors.WriteFile(filepath.Join(ad, prune.AdapterWeightsFile), tc.tensors, safetensors.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			cfg := `{"peft_type": "LORA", "r": 2, "lora_alpha": 2}`
			if err := os.WriteFile(filepath.Join(ad, prune.AdapterConfigFile), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := optima(t, "eval", "--model", dir, "--seqlen", "32", "--data-dir", f.data, "--json", "--no-progress")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ad) {
				t.Fatalf("error %v, want one naming %s and %s", err, tc.want, ad)
			}
		})
	}
}
