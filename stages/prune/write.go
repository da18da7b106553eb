package prune

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/stages/report"
)

// ReportFile is the name of the prune report inside the output directory.
const ReportFile = "report.json"

// BuildReport assembles the prune report of a run from its finished blocks.
func BuildReport(cfg *Config, dones []BlockDone) *report.Report {
	var ls []report.LinearReport
	for _, d := range dones {
		ls = append(ls, d.Linears...)
	}
	return report.New(cfg, ls)
}

// hfTokenizer is implemented by tokenizers that can write Hugging Face
// tokenizer files.
type hfTokenizer interface {
	HFTokenizerJSON() ([]byte, error)
	HFTokenizerConfigJSON() ([]byte, error)
}

// WriteModel writes the pruned model as a Hugging Face directory at out:
// every tensor of src, with the pruned linears of dones (one per block, all
// blocks of fam) laid over them, config.json, the tokenizer files and
// report.json, through hf.WriteModel (a temporary sibling renamed into
// place); a gs:// out is uploaded with config.json last (writeRemoteModel). Tensors are loaded one at a time.
// Adapters kept separate (lora_A/lora_B tensors in the block files) are
// written as a PEFT adapter directory out/adapter (writeAdapter) inside the
// same atomic write; the model's weights are then W_q without B·A.
func WriteModel(src model.Source, fam model.Family, cfg *Config, dones []BlockDone, out string) error {
	sort.Slice(dones, func(i, j int) bool { return dones[i].Block < dones[j].Block })
	if len(dones) != fam.NumBlocks() {
		return fmt.Errorf("write %s: %d of %d blocks finished", out, len(dones), fam.NumBlocks())
	}
	where := map[string]string{}
	for i, d := range dones {
		if d.Block != i {
			return fmt.Errorf("write %s: block %d missing", out, i)
		}
		f, err := openTensors(d.Weights)
		if err != nil {
			return err
		}
		for _, n := range f.Names() {
			where[n] = d.Weights
		}
		f.Close()
	}
	open := map[string]*safetensors.File{}
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	load := func(name string) (*model.Tensor, error) {
		p, ok := where[name]
		if !ok {
			return src.Load(name)
		}
		f := open[p]
		if f == nil {
			var err error
			if f, err = openTensors(p); err != nil {
				return nil, err
			}
			open[p] = f
		}
		return f.Load(name)
	}
	extra := map[string][]byte{}
	var buf bytes.Buffer
	if err := BuildReport(cfg, dones).WriteJSON(&buf); err != nil {
		return err
	}
	extra[ReportFile] = buf.Bytes()
	tok, err := src.Tokenizer()
	if err != nil {
		return fmt.Errorf("write %s: tokenizer: %w", out, err)
	}
	if ht, ok := tok.(hfTokenizer); ok {
		j, err := ht.HFTokenizerJSON()
		if err != nil {
			return err
		}
		c, err := ht.HFTokenizerConfigJSON()
		if err != nil {
			return err
		}
		extra["tokenizer.json"], extra["tokenizer_config.json"] = j, c
	}
	var adapterNames []string
	for n := range where {
		if strings.HasSuffix(n, LoraASuffix) || strings.HasSuffix(n, LoraBSuffix) {
			adapterNames = append(adapterNames, n)
		}
	}
	sort.Strings(adapterNames)
	var opts hf.WriteOptions
	if len(adapterNames) > 0 {
		base := out
		if !fileio.IsRemote(out) {
			if abs, err := filepath.Abs(out); err == nil {
				base = abs
			}
		}
		opts.Extra = func(tmp string) error {
			var ts []*model.Tensor
			for _, n := range adapterNames {
				t, err := load(n)
				if err != nil {
					return err
				}
				ts = append(ts, t)
			}
			return writeAdapter(filepath.Join(tmp, AdapterDir), base, ts)
		}
	}
	if !fileio.IsRemote(out) {
		return hf.WriteModel(out, src.Config(), src.Names(), load, extra, opts)
	}
	return writeRemoteModel(src, load, extra, out, opts)
}

// writeRemoteModel writes the model directory locally, then uploads it to
// the gs:// prefix out: it first removes out/config.json (so that a model
// being replaced stops being loadable) and every other object under out,
// uploads the weights and other files, and config.json last. A reader
// (loader.Open looks for config.json) never sees a half-written model; an
// interrupted upload leaves a prefix without config.json that the next run
// replaces.
func writeRemoteModel(src model.Source, load func(string) (*model.Tensor, error), extra map[string][]byte, out string, opts hf.WriteOptions) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "optima-out-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "model")
	if err := hf.WriteModel(dir, src.Config(), src.Names(), load, extra, opts); err != nil {
		return err
	}
	if err := fileio.Remove(ctx, fileio.Join(out, "config.json")); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := fileio.RemoveAll(ctx, out); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == AdapterDir && e.IsDir() {
			for _, f := range []string{AdapterWeightsFile, AdapterConfigFile} {
				if err := fileio.CopyFile(ctx, filepath.Join(dir, AdapterDir, f), fileio.Join(out, AdapterDir, f)); err != nil {
					return err
				}
			}
			continue
		}
		if e.Name() == "config.json" || e.IsDir() {
			continue
		}
		if err := fileio.CopyFile(ctx, filepath.Join(dir, e.Name()), fileio.Join(out, e.Name())); err != nil {
			return err
		}
	}
	return fileio.CopyFile(ctx, filepath.Join(dir, "config.json"), fileio.Join(out, "config.json"))
}
