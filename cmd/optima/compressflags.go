package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/compress"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/lora"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/quant"
)

// refParam maps one parameter of the reference's prune_and_quantize
// (Paramathic/optima optima/prune.py, SLiM's slim/) to optima.
type refParam struct {
	// Ref is the reference's keyword argument.
	Ref string
	// Flag is optima's flag (or flags) that sets it.
	Flag string
	// Note says how values map.
	Note string
}

// referenceParams is the one documented mapping of the reference's
// parameters to optima's flags; README.md's "Quantization and adapters"
// table lists the same rows (TestReferenceTableInREADME).
var referenceParams = []refParam{
	{"prune_method", "--method", "wanda, sparsegpt, magnitude (also thanos, admm)"},
	{"sparsity_ratio", "--sparsity", "unstructured ratio per row"},
	{"sparsity_type", "--pattern", "`2:4` etc.; unstructured: leave out and give --sparsity"},
	{"update_weights", "--update", "`optima` (exact row re-fit), `own`, `none` (= False)"},
	{"use_qp_solver", "--update optima", "the exact per-row QP is the default update; --cg-max-iter/--cg-tol/--damping tune it"},
	{"double_precision", "--float64", "row solve products in float64"},
	{"skip_attention", "--skip-attention", ""},
	{"nsamples", "--nsamples", "and --seqlen (reference: 2048)"},
	{"seed", "--seed", ""},
	{"calibration_dataset", "--calib", "a JSON Lines corpus (default: the shared C4 sample)"},
	{"shift_zero_metrics", "--shift-zero-metrics", "Wanda only; reference default True, optima default false"},
	{"quantize_weight", "--bits", "quantize when --bits is given (0: no quantization)"},
	{"bitwidth", "--bits", "2 to 8"},
	{"slim_quant", "--quant slim", "False: --quant absmax, or --quant gptq (OPTQ; with --method sparsegpt --update own it runs inside the SparseGPT sweep, one joint sweep)"},
	{"weight_tiled_quantization", "--group-size", "tiled when --group-size > 0"},
	{"weight_tile_size", "--group-size", "groups of N input columns per row; must divide every linear"},
	{"scale_important_weights", "--scale-important", ""},
	{"lora_rank", "--lora-rank", "fraction of min(out, in) in (0, 1]; 0 = no adapter"},
	{"slim_lora", "--slim-lora", "= --lora-fit slim (False: --lora-fit svd; optima adds --lora-fit hessian)"},
	{"separate_lora", "--separate-lora", "reference default True; optima default merged"},
	{"prune_lora", "--prune-lora", "needs --pattern 2:4"},
	{"quantize_lora", "--quantize-lora", "with --bits bits, groups of --lora-tile-size"},
	{"lora_tile_size", "--lora-tile-size", ""},
	{"pad_lora", "--pad-lora", "pads the rank to a multiple of --lora-tile-size"},
}

// compressFlags are the prune command's quantization and adapter flags.
type compressFlags struct {
	bits           int
	quant          string
	groupSize      int
	scaleImportant bool
	loraRank       float64
	loraFit        string
	slimLoRA       bool
	separateLoRA   bool
	pruneLoRA      bool
	quantizeLoRA   bool
	loraTileSize   int
	padLoRA        bool
}

func (c *compressFlags) add(f *pflag.FlagSet) {
	f.IntVar(&c.bits, "bits", 0, "quantize the weights to this signed integer width, 2-8, after the mask and update (0: no quantization)")
	f.StringVar(&c.quant, "quant", "absmax", "weight quantizer with --bits: absmax (per tensor, or per group), slim (SLiM-Quant error-minimising cap), gptq (OPTQ on the mask; with --method sparsegpt --update own, inside the SparseGPT sweep)")
	f.IntVar(&c.groupSize, "group-size", 0, "with --bits: one scale per GROUP consecutive input columns of a row (must divide every linear; not with --quant slim)")
	f.BoolVar(&c.scaleImportant, "scale-important", false, "with --bits: quantize the most important input columns with half the step (SLiM's scale_important_weights)")
	f.Float64Var(&c.loraRank, "lora-rank", 0, "fit a low-rank adapter to the compression error, rank as a fraction of min(out, in) in (0, 1] (0: none)")
	f.StringVar(&c.loraFit, "lora-fit", "svd", "adapter fit with --lora-rank: svd, slim (error scaled by input norms), hessian (against the layer Hessian)")
	f.BoolVar(&c.slimLoRA, "slim-lora", false, "the reference's boolean alias for --lora-fit slim")
	f.BoolVar(&c.separateLoRA, "separate-lora", false, "keep the adapter separate, written as a PEFT adapter in OUT/adapter (default: merged into the weights)")
	f.BoolVar(&c.pruneLoRA, "prune-lora", false, "prune the adapter's A 2:4 (needs --pattern 2:4)")
	f.BoolVar(&c.quantizeLoRA, "quantize-lora", false, "quantize the adapter to --bits in groups of --lora-tile-size")
	f.IntVar(&c.loraTileSize, "lora-tile-size", 0, "adapter tile: rank padding and quantization group (with --pad-lora or --quantize-lora)")
	f.BoolVar(&c.padLoRA, "pad-lora", false, "pad the adapter rank to a multiple of --lora-tile-size")
}

// options turns the flags into compress.Options (nil when neither --bits
// nor --lora-rank is given); changed reports whether a flag was set. Errors
// name the flag and say why the combination makes no sense.
func (c *compressFlags) options(changed func(string) bool) (*compress.Options, error) {
	var o compress.Options
	if c.bits != 0 {
		o.Quant = &quant.Options{Bits: c.bits, Method: quant.Method(c.quant), GroupSize: c.groupSize, ScaleImportant: c.scaleImportant}
	} else {
		for _, f := range []string{"quant", "group-size", "scale-important"} {
			if changed(f) {
				return nil, &flagError{"--" + f, "", "quantization options need --bits"}
			}
		}
	}
	fit := lora.Mode(c.loraFit)
	if c.slimLoRA {
		if changed("lora-fit") && fit != lora.SLiM {
			return nil, &flagError{"--slim-lora", "", fmt.Sprintf("is --lora-fit slim; it contradicts --lora-fit %s", c.loraFit)}
		}
		fit = lora.SLiM
	}
	if c.loraRank != 0 {
		o.LoRA = &lora.Options{Rank: c.loraRank, Mode: fit, Prune24: c.pruneLoRA}
		if c.padLoRA || c.quantizeLoRA {
			if c.loraTileSize <= 0 {
				return nil, &flagError{"--lora-tile-size", fmt.Sprint(c.loraTileSize), "--pad-lora and --quantize-lora need a positive tile size"}
			}
			o.LoRA.TileSize = c.loraTileSize
		} else if changed("lora-tile-size") {
			return nil, &flagError{"--lora-tile-size", fmt.Sprint(c.loraTileSize), "does nothing without --pad-lora or --quantize-lora"}
		}
		if c.quantizeLoRA {
			if c.bits == 0 {
				return nil, &flagError{"--quantize-lora", "", "needs --bits (the adapter takes the weights' bit width)"}
			}
			o.LoRA.QuantBits = c.bits
		}
		o.SeparateLoRA = c.separateLoRA
	} else {
		for _, f := range []string{"lora-fit", "slim-lora", "separate-lora", "prune-lora", "quantize-lora", "lora-tile-size", "pad-lora"} {
			if changed(f) {
				return nil, &flagError{"--" + f, "", "adapter options need --lora-rank"}
			}
		}
	}
	if !o.Enabled() {
		return nil, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// adapterLoader wraps a model loader so that the weights it returns carry
// the PEFT adapter at dir/adapter (prune.AdapterDir) merged in (W + B·A);
// without that directory it returns load unchanged and false. names are
// the model's tensor names: every adapter tensor must be the lora_A or
// lora_B weight of a module whose weight is among them, with its partner,
// else the error names the tensor (a tensor that merges nowhere would
// otherwise be left out silently).
//
// A gs:// dir's adapter is copied to a temporary local directory to be read.
func adapterLoader(dir string, names []string, load eval.Loader) (eval.Loader, bool, error) {
	ad := fileio.Join(dir, prune.AdapterDir)
	if !fileio.IsRemote(dir) {
		// A GGUF file has no adapter beneath it (stat: not a directory).
		if _, err := os.Stat(filepath.Join(ad, prune.AdapterConfigFile)); err != nil {
			return load, false, nil
		}
	} else if ok, err := fileio.Exists(context.Background(), fileio.Join(ad, prune.AdapterConfigFile)); err != nil {
		return nil, false, err
	} else if !ok {
		return load, false, nil
	}
	a, err := readAdapter(ad)
	if err != nil {
		return nil, false, err
	}
	if err := checkAdapter(a, names); err != nil {
		return nil, false, fmt.Errorf("adapter %s: %w", ad, err)
	}
	return func(names []string) (model.Weights, error) {
		w, err := load(names)
		if err != nil {
			return nil, err
		}
		sub := model.Weights{}
		for _, n := range names {
			if len(n) > len(".weight") && n[len(n)-len(".weight"):] == ".weight" {
				mod := n[:len(n)-len(".weight")]
				if ta, ok := a[mod+prune.LoraASuffix]; ok {
					sub[mod+prune.LoraASuffix] = ta
					if tb, ok := a[mod+prune.LoraBSuffix]; ok {
						sub[mod+prune.LoraBSuffix] = tb
					}
				}
			}
		}
		if len(sub) > 0 {
			if _, err := prune.MergeAdapter(w, sub); err != nil {
				return nil, fmt.Errorf("%s: %w", ad, err)
			}
		}
		return w, nil
	}, true, nil
}

// readAdapter is prune.ReadAdapter for a local or gs:// adapter directory.
func readAdapter(ad string) (model.Weights, error) {
	if !fileio.IsRemote(ad) {
		return prune.ReadAdapter(ad)
	}
	tmp, err := os.MkdirTemp("", "optima-adapter-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()
	for _, name := range []string{prune.AdapterConfigFile, prune.AdapterWeightsFile} {
		raw, err := fileio.ReadFile(ctx, fileio.Join(ad, name))
		if err != nil {
			return nil, fmt.Errorf("read adapter %s: %w", ad, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), raw, 0o644); err != nil {
			return nil, err
		}
	}
	a, err := prune.ReadAdapter(tmp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ad, err)
	}
	return a, nil
}

// checkAdapter checks that every tensor of a (ReadAdapter's names) is
// "<module>.lora_A.weight" or "<module>.lora_B.weight", that each has its
// partner, and that "<module>.weight" is one of the model's names. Errors
// name the first offending tensor in sorted order.
func checkAdapter(a model.Weights, names []string) error {
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	keys := slices.Sorted(maps.Keys(a))
	for _, n := range keys {
		mod, partner := "", ""
		if m, ok := strings.CutSuffix(n, prune.LoraASuffix); ok {
			mod, partner = m, m+prune.LoraBSuffix
		} else if m, ok := strings.CutSuffix(n, prune.LoraBSuffix); ok {
			mod, partner = m, m+prune.LoraASuffix
		} else {
			return fmt.Errorf("tensor %s is not a LoRA weight (<module>%s or <module>%s)", n, prune.LoraASuffix, prune.LoraBSuffix)
		}
		if _, ok := a[partner]; !ok {
			return fmt.Errorf("tensor %s has no %s", n, partner)
		}
		if !have[mod+".weight"] {
			return fmt.Errorf("tensor %s: the model has no weight %s.weight", n, mod)
		}
	}
	return nil
}
