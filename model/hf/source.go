package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

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
	byName map[string]*safetensors.File // by stored name
	names  []string                     // exposed names, sorted
	// stored maps an exposed name to the name in its file, for the names
	// CanonicalNames changed; other names are stored as exposed.
	stored map[string]string
}

var _ model.Source = (*Dir)(nil)

// Open opens the model directory dir: config.json plus model.safetensors or
// model.safetensors.index.json and its shards. Errors name the directory or
// file: a missing or malformed config.json, no safetensors weights (PyTorch
// .bin checkpoints are not supported), an index naming a missing shard or a
// tensor its shard lacks, a shard the index names that does not exist, or a
// tensor whose shape disagrees with config.json (CheckShape).
//
// Tensor names are those of the ...ForCausalLM class, as transformers
// loads them (CanonicalNames): a checkpoint saved from the base model
// ("decoder.layers.0..." for OPT, "layers.0..." for Llama) gets the
// "model." prefix, and the language model of a multimodal Gemma 3
// checkpoint ("language_model.model.layers.0...") is exposed as a Gemma 3
// text model while its vision tower and projector are left out (its
// config.json's text_config is read by ParseConfig).
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
	storedNames := make([]string, 0, len(d.byName))
	for n := range d.byName {
		storedNames = append(storedNames, n)
	}
	exposed, err := CanonicalNames(storedNames)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	d.stored = map[string]string{}
	for n, st := range exposed {
		d.names = append(d.names, n)
		if n != st {
			d.stored[n] = st
		}
	}
	sort.Strings(d.names)
	for _, n := range d.names {
		st := d.storedName(n)
		ti, _ := d.byName[st].Info(st)
		if err := CheckShape(cfg, n, ti.Shape); err != nil {
			return nil, fmt.Errorf("hf: %s: %w", d.byName[st].Name, err)
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

// storedName is the name in its file of the exposed tensor name.
func (d *Dir) storedName(name string) string {
	if st, ok := d.stored[name]; ok {
		return st
	}
	return name
}

// Multimodal prefixes of the language model in Gemma3ForConditionalGeneration
// checkpoints: transformers v4 and v5's save_pretrained
// (language_model.model.*, language_model.lm_head.*) and v5's in-memory
// module layout (model.language_model.*, lm_head.*).
const (
	mmLegacyPrefix = "language_model."
	mmV5Prefix     = "model.language_model."
)

// CanonicalNames maps the tensor names stored in a checkpoint to the names
// of the ...ForCausalLM module tree, as transformers' from_pretrained does
// with a base_model_prefix of "model" (modeling_utils: keys of a
// checkpoint saved from the base model get the prefix) and with
// Gemma3ForConditionalGeneration's checkpoint conversion of the language
// model. It returns exposed name → stored name:
//
//   - names under "language_model." or "model.language_model." (a
//     multimodal checkpoint): "language_model.model.X" and
//     "model.language_model.X" become "model.X", "language_model.lm_head.X"
//     becomes "lm_head.X", "lm_head.X" stays; every other tensor (vision
//     tower, multimodal projector) is left out;
//   - else, when no name starts with "model." (a base-model checkpoint:
//     "decoder.layers.0.fc1.weight", "layers.0.mlp.up_proj.weight"),
//     every name except "lm_head.*" gets the "model." prefix;
//   - else the names are kept.
//
// Two stored names mapping to one exposed name is an error naming both.
func CanonicalNames(stored []string) (map[string]string, error) {
	out := make(map[string]string, len(stored))
	add := func(exposed, st string) error {
		if prev, dup := out[exposed]; dup {
			return fmt.Errorf("tensors %q and %q both load as %q", prev, st, exposed)
		}
		out[exposed] = st
		return nil
	}
	multimodal, prefixed := false, false
	for _, n := range stored {
		multimodal = multimodal || strings.HasPrefix(n, mmLegacyPrefix) || strings.HasPrefix(n, mmV5Prefix)
		prefixed = prefixed || strings.HasPrefix(n, "model.")
	}
	sorted := slices.Sorted(slices.Values(stored))
	for _, n := range sorted {
		var exposed string
		switch {
		case multimodal:
			switch {
			case strings.HasPrefix(n, mmLegacyPrefix+"model."):
				exposed = "model." + strings.TrimPrefix(n, mmLegacyPrefix+"model.")
			case strings.HasPrefix(n, mmLegacyPrefix+"lm_head."):
				exposed = strings.TrimPrefix(n, mmLegacyPrefix)
			case strings.HasPrefix(n, mmV5Prefix):
				exposed = "model." + strings.TrimPrefix(n, mmV5Prefix)
			case strings.HasPrefix(n, "lm_head."):
				exposed = n
			default:
				continue // vision tower, projector
			}
		case !prefixed && !strings.HasPrefix(n, "lm_head."):
			exposed = "model." + n
		default:
			exposed = n
		}
		if err := add(exposed, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Config is the parsed config.json. Callers must not modify it.
func (d *Dir) Config() *model.Config { return d.cfg }

// Names lists every tensor, sorted.
func (d *Dir) Names() []string { return append([]string(nil), d.names...) }

// Shape is a tensor's shape, without reading it.
func (d *Dir) Shape(name string) ([]int, bool) {
	st := d.storedName(name)
	sf, ok := d.byName[st]
	if !ok || !d.has(name) {
		return nil, false
	}
	ti, _ := sf.Info(st)
	return append([]int(nil), ti.Shape...), true
}

// Load reads one tensor (by its exposed name, see Open) as float32;
// errors name the file and tensor.
func (d *Dir) Load(name string) (*model.Tensor, error) {
	st := d.storedName(name)
	sf, ok := d.byName[st]
	if !ok || !d.has(name) {
		return nil, fmt.Errorf("hf: %s: no tensor %q", d.path, name)
	}
	t, err := sf.Load(st)
	if err != nil {
		return nil, err
	}
	t.Name = name
	return t, nil
}

// has reports whether name is one of the exposed names (a stored name
// that was renamed or left out is not).
func (d *Dir) has(name string) bool {
	_, found := slices.BinarySearch(d.names, name)
	return found
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
