package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/stages/prune"
)

// fullHashLimit is the largest file whose whole contents go into its
// inputID; of a larger file only the first headHashBytes are hashed (the
// safetensors header with the tensor index, a GGUF's metadata) and its size
// and, locally, its modification time, on GCS the object's CRC32C, stand
// for the rest.
var fullHashLimit int64 = 64 << 20

// headHashBytes is how much of a file above fullHashLimit is hashed.
const headHashBytes = 1 << 20

// inputID is the identity of one input file in a work directory's key.
type inputID struct {
	// Path is the file (a model directory's files are listed one by one).
	Path string `json:"path"`
	// Size is its length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the file, or of its first
	// headHashBytes when Head is set.
	SHA256 string `json:"sha256"`
	Head   bool   `json:"head,omitempty"`
	// ModTimeNS is the modification time (Unix nanoseconds) of a local
	// file hashed only in part: a rewrite of the part not hashed changes it.
	ModTimeNS int64 `json:"mtime_ns,omitempty"`
	// CRC32C is the hex CRC-32C of the whole object, as GCS stores it, of a
	// gs:// file hashed only in part: GCS objects have no modification time
	// that a rewrite must change, but their checksum covers every byte.
	CRC32C string `json:"crc32c,omitempty"`
}

// modelFile reports whether a file of a model directory can change what
// the loader reads: configuration, tokenizer and weights, not a README.
func modelFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, ext := range []string{".json", ".safetensors", ".gguf", ".model", ".txt", ".bin"} {
		if strings.HasSuffix(name, ext) && !strings.EqualFold(name, "README.txt") && !strings.EqualFold(name, "LICENSE.txt") {
			return true
		}
	}
	return false
}

// inputIDs returns the identity of the model at model (a GGUF file or
// object, or a model directory's files) and of the corpus at calib.
func inputIDs(ctx context.Context, model, calib string) ([]inputID, error) {
	var files []string
	isDir, err := fileio.IsDir(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", model, err)
	}
	switch {
	case isDir && fileio.IsRemote(model):
		all, err := fileio.Glob(ctx, fileio.Join(model, "*"))
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", model, err)
		}
		for _, p := range all {
			if modelFile(fileio.Base(p)) {
				files = append(files, p)
			}
		}
	case isDir:
		ents, err := os.ReadDir(model)
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", model, err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && modelFile(e.Name()) {
				files = append(files, filepath.Join(model, e.Name()))
			}
		}
	default:
		files = append(files, model)
	}
	files = append(files, calib)
	ids := make([]inputID, 0, len(files))
	for _, p := range files {
		id, err := fileID(ctx, p)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// fileID hashes the local or gs:// file p (see inputID).
func fileID(ctx context.Context, p string) (inputID, error) {
	r, err := fileio.OpenReaderAt(ctx, p)
	if err != nil {
		return inputID{}, fmt.Errorf("identify input: %w", err)
	}
	defer r.Close()
	id := inputID{Path: p, Size: r.Size()}
	n := id.Size
	if n > fullHashLimit {
		n, id.Head = headHashBytes, true
		if c, ok := r.(interface{ CRC32C() uint32 }); ok {
			id.CRC32C = fmt.Sprintf("%08x", c.CRC32C())
		} else {
			st, err := os.Stat(p)
			if err != nil {
				return inputID{}, fmt.Errorf("identify input: %w", err)
			}
			id.ModTimeNS = st.ModTime().UnixNano()
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, n)); err != nil {
		return inputID{}, fmt.Errorf("identify input %s: %w", p, err)
	}
	id.SHA256 = hex.EncodeToString(h.Sum(nil))
	return id, nil
}

// workKey names a run's work directory: a short hex digest of the
// configuration's JSON (what prune.Config.Hash covers) and of the inputs'
// identities, so that a model or corpus replaced at the same path starts
// afresh instead of resuming from work made with the old one.
func workKey(cfg *prune.Config, inputs []inputID) string {
	c, _ := json.Marshal(cfg)
	in, _ := json.Marshal(inputs)
	h := sha256.New()
	h.Write(c)
	h.Write([]byte{0})
	h.Write(in)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Work directory files that mark it as optima's and record what it was
// made from.
const (
	workConfigFile = "config.json"
	workInputsFile = "inputs.json"
)

// newWork creates the work directory dir and records the configuration
// and the inputs' identities in it (as prune.NewWork does, which names the
// directory by the configuration alone).
func newWork(dir string, cfg *prune.Config, inputs []inputID) (prune.Work, error) {
	w := prune.Work{Dir: dir}
	if err := fileio.MkdirAll(dir); err != nil {
		return w, fmt.Errorf("work directory: %w", err)
	}
	c, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return w, err
	}
	in, err := json.MarshalIndent(inputs, "", "  ")
	if err != nil {
		return w, err
	}
	if err := prune.WriteFileAtomic(fileio.Join(dir, workInputsFile), in); err != nil {
		return w, err
	}
	return w, prune.WriteFileAtomic(fileio.Join(dir, workConfigFile), c)
}

// warnStaleWork logs with log.Warn each work directory in root, other than
// the one named key, that was made with the configuration cfg from inputs
// at the same paths but identified otherwise (its inputs.json differs from
// inputs in a size, hash, time or checksum): an input changed since, or an
// earlier optima identified it differently (before large gs:// inputs were
// identified by GCS's CRC32C), so this run does not resume it and starts
// afresh. The message names the directory and the inputs that differ; the
// directory is left alone (it may still be wanted). Best effort: a root
// that cannot be listed, or a directory whose records cannot be read, is
// passed over silently.
func warnStaleWork(ctx context.Context, root, key string, cfg *prune.Config, inputs []inputID, log *slog.Logger) {
	records, err := fileio.Glob(ctx, fileio.Join(root, "*", workInputsFile))
	if err != nil {
		return
	}
	c, err := json.Marshal(cfg)
	if err != nil {
		return
	}
	var ours any
	if json.Unmarshal(c, &ours) != nil {
		return
	}
	for _, rec := range records {
		dir := fileio.Dir(rec)
		name := fileio.Base(dir)
		if name == key || !workKeyRE.MatchString(name) {
			continue
		}
		raw, err := fileio.ReadFile(ctx, fileio.Join(dir, workConfigFile))
		if err != nil {
			continue
		}
		var theirs any
		if json.Unmarshal(raw, &theirs) != nil || !reflect.DeepEqual(ours, theirs) {
			continue
		}
		raw, err = fileio.ReadFile(ctx, rec)
		if err != nil {
			continue
		}
		var old []inputID
		if json.Unmarshal(raw, &old) != nil || len(old) != len(inputs) {
			continue
		}
		var differ []string
		for i, in := range inputs {
			if old[i].Path != in.Path {
				differ = nil
				break
			}
			if old[i] != in {
				differ = append(differ, in.Path)
			}
		}
		if len(differ) == 0 {
			continue
		}
		log.Warn("not resuming a work directory made with this configuration from the same input paths: those inputs are identified otherwise now (changed since, or identified by an earlier optima, which recorded no CRC32C for large gs:// inputs); this run starts afresh, and that directory stays until removed",
			"dir", dir, "inputs", strings.Join(differ, " "))
	}
}
