package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/model/tokenizer"
)

// Dir is a Hugging Face model directory opened as a model.Source. It is safe
// for concurrent Load calls.
type Dir struct {
	path   string
	cfg    *model.Config
	files  []*safetensors.File
	byName map[string]*safetensors.File
	names  []string
}

var _ model.Source = (*Dir)(nil)

// Open opens the model directory dir: config.json plus model.safetensors or
// model.safetensors.index.json and its shards. Errors name the directory or
// file: a missing or malformed config.json, no safetensors weights (PyTorch
// .bin checkpoints are not supported), an index naming a missing shard or a
// tensor its shard lacks, a shard the index names that does not exist, or a
// tensor whose shape disagrees with config.json (CheckShape).
func Open(dir string) (*Dir, error) {
	cfg, err := ReadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	d := &Dir{path: dir, cfg: cfg, byName: map[string]*safetensors.File{}}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	idxPath := filepath.Join(dir, safetensors.IndexName)
	if b, err := os.ReadFile(idxPath); err == nil {
		weightMap, err := ParseIndex(b, idxPath)
		if err != nil {
			return nil, err
		}
		shards := map[string]*safetensors.File{}
		// Open shards in a fixed order so that errors are reproducible.
		tensorNames := make([]string, 0, len(weightMap))
		for name := range weightMap {
			tensorNames = append(tensorNames, name)
		}
		sort.Strings(tensorNames)
		for _, name := range tensorNames {
			fn := weightMap[name]
			sf, seen := shards[fn]
			if !seen {
				p := filepath.Join(dir, fn)
				if _, err := os.Stat(p); os.IsNotExist(err) {
					return nil, fmt.Errorf("hf: %s: shard %s (holding tensor %q) is missing", idxPath, fn, name)
				}
				if sf, err = safetensors.Open(p); err != nil {
					return nil, fmt.Errorf("hf: %s: %w", idxPath, err)
				}
				shards[fn] = sf
				d.files = append(d.files, sf)
			}
			if _, has := sf.Info(name); !has {
				return nil, fmt.Errorf("hf: %s: tensor %q is not in %s", idxPath, name, fn)
			}
			d.byName[name] = sf
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("hf: %w", err)
	} else {
		single := filepath.Join(dir, safetensors.SingleName)
		sf, err := safetensors.Open(single)
		if os.IsNotExist(unwrapAll(err)) {
			return nil, fmt.Errorf("hf: %s has neither %s nor %s (PyTorch .bin checkpoints are not supported)", dir, safetensors.SingleName, safetensors.IndexName)
		}
		if err != nil {
			return nil, fmt.Errorf("hf: %w", err)
		}
		d.files = append(d.files, sf)
		for _, n := range sf.Names() {
			d.byName[n] = sf
		}
	}
	for n := range d.byName {
		d.names = append(d.names, n)
	}
	sort.Strings(d.names)
	for _, n := range d.names {
		ti, _ := d.byName[n].Info(n)
		if err := CheckShape(cfg, n, ti.Shape); err != nil {
			return nil, fmt.Errorf("hf: %s: %w", d.byName[n].Name, err)
		}
	}
	ok = true
	return d, nil
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Config is the parsed config.json. Callers must not modify it.
func (d *Dir) Config() *model.Config { return d.cfg }

// Names lists every tensor, sorted.
func (d *Dir) Names() []string { return append([]string(nil), d.names...) }

// Shape is a tensor's shape, without reading it.
func (d *Dir) Shape(name string) ([]int, bool) {
	sf, ok := d.byName[name]
	if !ok {
		return nil, false
	}
	ti, _ := sf.Info(name)
	return append([]int(nil), ti.Shape...), true
}

// Load reads one tensor as float32; errors name the file and tensor.
func (d *Dir) Load(name string) (*model.Tensor, error) {
	sf, ok := d.byName[name]
	if !ok {
		return nil, fmt.Errorf("hf: %s: no tensor %q", d.path, name)
	}
	return sf.Load(name)
}

// Tokenizer builds the tokenizer of the directory with
// tokenizer.LoadHFJSON from tokenizer.json and, when present,
// tokenizer_config.json (BOS, EOS, add_bos_token, add_eos_token): a
// *tokenizer.BPE for byte-level BPE files (GPT-2, Llama 3, Qwen2, SmolLM), a
// *tokenizer.SentencePiece for SentencePiece-style ones (Llama 2, Mistral,
// Gemma). Errors name the file: a directory without tokenizer.json (e.g. a
// SentencePiece tokenizer.model only), unreadable files, everything
// LoadHFJSON rejects, and a tokenizer that does not belong to the model in
// config.json (see CheckTokenizer).
func (d *Dir) Tokenizer() (tokenizer.Tokenizer, error) {
	tpath := filepath.Join(d.path, "tokenizer.json")
	tj, err := os.ReadFile(tpath)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("hf: %s does not exist (only tokenizer.json tokenizers are supported)", tpath)
	}
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	cpath := filepath.Join(d.path, "tokenizer_config.json")
	cj, err := os.ReadFile(cpath)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("hf: %w", err)
	}
	tok, err := tokenizer.LoadHFJSON(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", d.path, err)
	}
	if err := CheckTokenizer(tok, d.cfg); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", tpath, err)
	}
	return tok, nil
}

// CheckTokenizer returns an error when tok cannot be the tokenizer of the
// model described by cfg ("a tokenizer from another model"): when an id
// that plain text can produce (any token but the added ones past the
// model's vocabulary, see tokenizer.TextVocabSize) or its BOS or EOS id is
// not below cfg.VocabSize. Models may have more embedding rows than tokens
// (Gemma 3 4B: 262,208 rows, 262,144 tokens), so a smaller vocabulary is
// accepted. config.json's bos_token_id is not compared: real pairs differ
// (DeepSeek-R1-Distill-Qwen: 151643 in config.json, 151646 in the
// tokenizer).
func CheckTokenizer(tok tokenizer.Tokenizer, cfg *model.Config) error {
	if n := tokenizer.TextVocabSize(tok); n > cfg.VocabSize {
		return fmt.Errorf("tokenizer from another model? its vocabulary has %d tokens but the model's vocab_size is %d", n, cfg.VocabSize)
	}
	for _, sp := range []struct {
		name string
		id   int32
	}{{"BOS", tok.BOS()}, {"EOS", tok.EOS()}} {
		if int(sp.id) >= cfg.VocabSize {
			return fmt.Errorf("tokenizer from another model? its %s id %d is not below the model's vocab_size %d", sp.name, sp.id, cfg.VocabSize)
		}
	}
	return nil
}

// Close closes all shard files.
func (d *Dir) Close() error {
	var first error
	for _, f := range d.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.files = nil
	return first
}
