// Command families is the optima half of bench/forward/families.sh: it
// writes random models of every family at SmolLM2-135M's widths, and times
// one forward pass of such a model on the CPU.
//
//	families -write DIR [-layers 4] [-seed 1]
//	families -model DIR [-seqlen 2048] [-threads 2]
//
// -write makes DIR/llama, DIR/opt, DIR/gemma2 and DIR/gemma3 with
// internal/tinymodel: hidden 576, 9 attention heads of 64, intermediate
// (OPT: ffn_dim) 1536, 3 key/value heads (Llama, Gemma), vocab 320 (so the
// LM head is negligible and the blocks dominate), float32 safetensors;
// Gemma's even layers slide over 512 tokens. It prints the directories.
//
// -model loads a Hugging Face directory (all tensors in memory, not
// timed), runs one untimed warm-up pass, then one timed pass: Embed, every
// ForwardBlock and Logits for one sequence of -seqlen token ids
// ids[i] = (7919·i + 13) mod vocab, on kernels/cpu with -threads threads.
// It prints one JSON object: family, tokens, seconds, tokens_per_second and
// last_logits (the last position's first 8 logits, which
// families_forward.py compares with transformers' as a check that both
// sides ran the same model).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
	"github.com/optima-llm/optima/model/loader"
)

func main() {
	write := flag.String("write", "", "write the family models into this directory")
	layers := flag.Int("layers", 4, "blocks per model (-write)")
	seed := flag.Uint64("seed", 1, "weight seed (-write)")
	dir := flag.String("model", "", "time the forward pass of this model directory")
	seqlen := flag.Int("seqlen", 2048, "tokens in the sequence (-model)")
	threads := flag.Int("threads", 2, "kernel threads (-model)")
	flag.Parse()
	var err error
	switch {
	case *write != "" && *dir == "":
		err = writeModels(*write, *layers, *seed)
	case *dir != "" && *write == "":
		err = timeForward(*dir, *seqlen, *threads)
	default:
		err = fmt.Errorf("give exactly one of -write and -model")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "families:", err)
		os.Exit(1)
	}
}

// writeModels writes the four family models under dir.
func writeModels(dir string, layers int, seed uint64) error {
	base := tinymodel.Options{Vocab: 320, Hidden: 576, Intermediate: 1536, Layers: layers, Heads: 9, KVHeads: 3,
		RopeTheta: 100000, RMSNormEps: 1e-5, Tied: true, Seed: seed}
	for _, f := range []struct {
		name string
		edit func(*tinymodel.Options)
	}{
		{"llama", func(o *tinymodel.Options) {}},
		{"opt", func(o *tinymodel.Options) { o.Arch = tinymodel.OPT }},
		{"gemma2", func(o *tinymodel.Options) { o.Arch, o.SlidingWindow, o.RMSNormEps = tinymodel.Gemma2, 512, 1e-6 }},
		{"gemma3", func(o *tinymodel.Options) { o.Arch, o.SlidingWindow, o.RMSNormEps = tinymodel.Gemma3, 512, 1e-6 }},
	} {
		o := base
		f.edit(&o)
		p := filepath.Join(dir, f.name)
		if _, _, err := tinymodel.Write(p, o); err != nil {
			return err
		}
		fmt.Println(p)
	}
	return nil
}

// timeForward loads dir and times one forward pass; see the package doc.
func timeForward(dir string, seqlen, threads int) error {
	src, err := loader.Open(dir)
	if err != nil {
		return err
	}
	defer src.Close()
	cfg := src.Config()
	fam, err := model.New(cfg)
	if err != nil {
		return err
	}
	w := model.Weights{}
	for _, n := range src.Names() {
		if w[n], err = src.Load(n); err != nil {
			return err
		}
	}
	ids := make([]int32, seqlen)
	for i := range ids {
		ids[i] = int32((7919*i + 13) % cfg.VocabSize)
	}
	be := cpu.New(threads)
	x := make([]float32, seqlen*cfg.HiddenSize)
	logits := make([]float32, seqlen*cfg.VocabSize)
	forward := func() error {
		if err := fam.Embed(w, ids, x); err != nil {
			return err
		}
		for i := range fam.NumBlocks() {
			if err := fam.ForwardBlock(be, i, w, x, 1, seqlen, nil); err != nil {
				return err
			}
		}
		return fam.Logits(be, w, x, seqlen, logits)
	}
	if err := forward(); err != nil { // warm-up
		return err
	}
	t0 := time.Now()
	if err := forward(); err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	last := logits[(seqlen-1)*cfg.VocabSize:][:8]
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"family": cfg.Architecture, "tokens": seqlen, "seconds": secs,
		"tokens_per_second": float64(seqlen) / secs, "threads": threads, "last_logits": last,
	})
}
