package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

// DefaultMaxShardBytes is the shard size WriteModel uses when
// WriteOptions.MaxShardBytes is 0 (2 GiB).
const DefaultMaxShardBytes = 2 << 30

// WriteOptions configures WriteModel.
type WriteOptions struct {
	// MaxShardBytes bounds each safetensors shard (tensor data only); 0
	// means DefaultMaxShardBytes, negative means one file.
	MaxShardBytes int64
	// DType is the stored dtype: safetensors.F32 (default), F16 or BF16.
	DType safetensors.DType
	// Extra, when set, is called with the temporary directory once every
	// other file is written and before it is renamed into place, to add
	// files or subdirectories (e.g. a PEFT adapter/ directory) that then
	// appear atomically with the model; its error aborts the write.
	Extra func(tmp string) error `json:"-"`
}

var torchDTypes = map[safetensors.DType]string{"": "float32", safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}

// WriteModel writes a Hugging Face model directory at dir: config.json
// (ConfigJSON of cfg), the tensors named by names (loaded one at a time by
// load, written sorted as model.safetensors or shards with an index) and
// the extra files (file name → contents, e.g. "tokenizer.json"; names must
// be plain file names).
//
// Everything is written into a temporary sibling directory first; only when
// it is complete is an existing dir moved aside, the new one renamed into
// place and the old one removed. On any error dir is left as it was and the
// temporary directory is removed. An unwritable or missing parent directory
// is an error naming it.
func WriteModel(dir string, cfg *model.Config, names []string, load func(name string) (*model.Tensor, error), extra map[string][]byte, opts WriteOptions) (err error) {
	dtype, ok := torchDTypes[opts.DType]
	if !ok {
		return fmt.Errorf("hf: write %s: cannot write dtype %q (supported: F32, F16, BF16)", dir, opts.DType)
	}
	for name := range extra {
		if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || name == "config.json" ||
			strings.HasSuffix(name, ".safetensors") || name == safetensors.IndexName {
			return fmt.Errorf("hf: write %s: invalid extra file name %q", dir, name)
		}
	}
	dir = filepath.Clean(dir)
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("hf: write %s: exists and is not a directory", dir)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("hf: write %s: cannot create a directory in %s: %w", dir, parent, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("hf: write %s: %w", dir, err)
	}
	cj, err := ConfigJSON(cfg, dtype)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, "config.json"), cj); err != nil {
		return fmt.Errorf("hf: write %s: %w", dir, err)
	}
	for name, b := range extra {
		if err := writeSynced(filepath.Join(tmp, name), b); err != nil {
			return fmt.Errorf("hf: write %s: %w", dir, err)
		}
	}
	limit := opts.MaxShardBytes
	if limit == 0 {
		limit = DefaultMaxShardBytes
	}
	if _, err := safetensors.WriteShardedFunc(tmp, names, safetensors.LoadFunc(load), limit, safetensors.WriteOptions{DType: opts.DType}); err != nil {
		return fmt.Errorf("hf: write %s: %w", dir, err)
	}
	if opts.Extra != nil {
		if err := opts.Extra(tmp); err != nil {
			return fmt.Errorf("hf: write %s: %w", dir, err)
		}
	}
	syncPath(tmp)
	return swapDir(tmp, dir)
}

// swapDir renames tmp to dir, moving an existing dir aside first and
// removing it afterwards (restoring it if the second rename fails).
func swapDir(tmp, dir string) error {
	old := ""
	if _, err := os.Stat(dir); err == nil {
		o, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".old-*")
		if err != nil {
			return fmt.Errorf("hf: write %s: %w", dir, err)
		}
		os.Remove(o)
		if err := os.Rename(dir, o); err != nil {
			return fmt.Errorf("hf: write %s: move the old directory aside: %w", dir, err)
		}
		old = o
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("hf: write %s: %w", dir, err)
	}
	syncPath(filepath.Dir(dir))
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("hf: write %s: written, but the old copy %s could not be removed: %w", dir, old, err)
		}
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncPath(p string) {
	if f, err := os.Open(p); err == nil {
		f.Sync()
		f.Close()
	}
}
