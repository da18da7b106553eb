// Command truncate writes the first N transformer blocks of a model (GGUF or
// Hugging Face directory) as a Hugging Face directory: embeddings, blocks
// 0..N-1, final norm and head, config.json with num_hidden_layers = N, and
// the tokenizer files. bench/slim uses it for its small local run, where
// pruning all 30 blocks of SmolLM2-135M with the exact row re-fit does not
// fit the 2 shared cores of the dev machine.
//
//	go run ./bench/slim/truncate --model MODEL --blocks 2 --out DIR
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/stages/prune"
)

type hfTokenizer interface {
	HFTokenizerJSON() ([]byte, error)
	HFTokenizerConfigJSON() ([]byte, error)
}

func main() {
	in := flag.String("model", "", "GGUF file or Hugging Face model directory")
	blocks := flag.Int("blocks", 2, "blocks to keep")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if err := run(*in, *blocks, *out); err != nil {
		fmt.Fprintln(os.Stderr, "truncate:", err)
		os.Exit(1)
	}
}

func run(in string, blocks int, out string) error {
	src, err := loader.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	fam, err := model.New(src.Config())
	if err != nil {
		return err
	}
	if blocks <= 0 || blocks > fam.NumBlocks() {
		return fmt.Errorf("--blocks %d: want 1..%d", blocks, fam.NumBlocks())
	}
	drop := map[string]bool{}
	for b := blocks; b < fam.NumBlocks(); b++ {
		for _, n := range fam.BlockTensors(b) {
			drop[n] = true
		}
	}
	var names []string
	for _, n := range src.Names() {
		if !drop[n] && prune.BlockOf(n) < blocks {
			names = append(names, n)
		}
	}
	cfg := *src.Config()
	cfg.NumHiddenLayers = blocks
	extra := map[string][]byte{}
	tok, err := src.Tokenizer()
	if err != nil {
		return err
	}
	if ht, ok := tok.(hfTokenizer); ok {
		if extra["tokenizer.json"], err = ht.HFTokenizerJSON(); err != nil {
			return err
		}
		if extra["tokenizer_config.json"], err = ht.HFTokenizerConfigJSON(); err != nil {
			return err
		}
	}
	return hf.WriteModel(out, &cfg, names, src.Load, extra, hf.WriteOptions{})
}
