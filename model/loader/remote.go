package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/model/tokenizer"
)

// openRemote opens a gs:// checkpoint: a GGUF object, or a prefix holding a
// Hugging Face model directory (config.json, model.safetensors or an index
// and its shards, tokenizer.json). Tensor data is read lazily with one
// ranged request per tensor (fileio.OpenReaderAt), so a worker that needs one
// block's weights never downloads the whole checkpoint.
func openRemote(path string) (model.Source, error) {
	ctx := context.Background()
	path = fileio.Clean(path)
	cfgPath := fileio.Join(path, "config.json")
	if ok, err := fileio.Exists(ctx, cfgPath); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	} else if ok {
		return openRemoteHF(ctx, path)
	}
	r, err := fileio.OpenReaderAt(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loader: %s: no such object, and no config.json under it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	var magic [4]byte
	if r.Size() >= 4 {
		if _, err := r.ReadAt(magic[:], 0); err != nil {
			r.Close()
			return nil, fmt.Errorf("loader: %w", err)
		}
	}
	if !bytes.Equal(magic[:], []byte(gguf.Magic)) {
		r.Close()
		return nil, fmt.Errorf("%w: %s is neither a GGUF file nor a Hugging Face model directory", ErrUnknownFormat, path)
	}
	f, err := gguf.Parse(r, r.Size(), path)
	if err != nil {
		r.Close()
		return nil, err
	}
	m, err := gguf.NewModel(f)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &closingSource{Source: m, close: r.Close}, nil
}

// closingSource closes an extra handle (the ranged reader under a parsed
// GGUF file) with its source.
type closingSource struct {
	model.Source
	close func() error
}

func (c *closingSource) Close() error {
	err := c.Source.Close()
	if cerr := c.close(); err == nil {
		err = cerr
	}
	return err
}

// remoteHF is a Hugging Face model directory on GCS, read like hf.Dir.
type remoteHF struct {
	path   string
	cfg    *model.Config
	files  []*safetensors.File
	byName map[string]*safetensors.File
	names  []string
}

func openRemoteHF(ctx context.Context, dir string) (_ *remoteHF, err error) {
	cfgPath := fileio.Join(dir, "config.json")
	raw, err := fileio.ReadFile(ctx, cfgPath)
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	cfg, err := hf.ParseConfig(raw, cfgPath)
	if err != nil {
		return nil, err
	}
	d := &remoteHF{path: dir, cfg: cfg, byName: map[string]*safetensors.File{}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	open := func(name string) (*safetensors.File, error) {
		p := fileio.Join(dir, name)
		r, err := fileio.OpenReaderAt(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("hf: %w", err)
		}
		sf, err := safetensors.NewFile(r, p)
		if err != nil {
			r.Close()
			return nil, err
		}
		d.files = append(d.files, sf)
		return sf, nil
	}
	idxPath := fileio.Join(dir, safetensors.IndexName)
	if b, err := fileio.ReadFile(ctx, idxPath); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("hf: %s: %w", idxPath, err)
		}
		shards := map[string]*safetensors.File{}
		for name, fn := range idx.WeightMap {
			if fn == "" || strings.Contains(fn, "/") || strings.HasPrefix(fn, ".") {
				return nil, fmt.Errorf("hf: %s: tensor %q maps to invalid file name %q", idxPath, name, fn)
			}
			sf := shards[fn]
			if sf == nil {
				if sf, err = open(fn); err != nil {
					return nil, fmt.Errorf("hf: %s: %w", idxPath, err)
				}
				shards[fn] = sf
			}
			if _, has := sf.Info(name); !has {
				return nil, fmt.Errorf("hf: %s: tensor %q is not in %s", idxPath, name, fn)
			}
			d.byName[name] = sf
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hf: %w", err)
	} else {
		sf, err := open(safetensors.SingleName)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("hf: %s has neither %s nor %s", dir, safetensors.SingleName, safetensors.IndexName)
		}
		if err != nil {
			return nil, err
		}
		for _, n := range sf.Names() {
			d.byName[n] = sf
		}
	}
	for n := range d.byName {
		d.names = append(d.names, n)
	}
	sort.Strings(d.names)
	return d, nil
}

func (d *remoteHF) Path() string          { return d.path }
func (d *remoteHF) Config() *model.Config { return d.cfg }
func (d *remoteHF) Names() []string       { return append([]string(nil), d.names...) }
func (d *remoteHF) Load(name string) (*model.Tensor, error) {
	sf, ok := d.byName[name]
	if !ok {
		return nil, fmt.Errorf("hf: %s: no tensor %q", d.path, name)
	}
	return sf.Load(name)
}

// Tokenizer reads tokenizer.json and, when present, tokenizer_config.json
// (as hf.Dir.Tokenizer does).
func (d *remoteHF) Tokenizer() (tokenizer.Tokenizer, error) {
	ctx := context.Background()
	tpath := fileio.Join(d.path, "tokenizer.json")
	tj, err := fileio.ReadFile(ctx, tpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hf: %s does not exist (only tokenizer.json byte-level BPE tokenizers are supported)", tpath)
	}
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	cj, err := fileio.ReadFile(ctx, fileio.Join(d.path, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hf: %w", err)
	}
	tok, err := tokenizer.FromHFJSON(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", d.path, err)
	}
	return tok, nil
}

func (d *remoteHF) Close() error {
	var first error
	for _, f := range d.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.files = nil
	return first
}
