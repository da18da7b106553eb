// Package loader opens a checkpoint of any supported format as a
// model.Source.
package loader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

// ErrUnknownFormat is wrapped when path is neither a GGUF file nor a Hugging
// Face model directory.
var ErrUnknownFormat = errors.New("loader: unknown checkpoint format")

// Open opens path as a model.Source: a file starting with the GGUF magic
// (gguf.OpenModel) or a directory holding config.json (hf.Open). Anything
// else is an error wrapping ErrUnknownFormat that names path; errors of the
// format readers are returned as they are. A gs://bucket/object path is read
// from Google Cloud Storage through internal/fileio: a GGUF object, or a
// prefix holding a Hugging Face model directory, with tensors fetched by
// ranged reads.
func Open(path string) (model.Source, error) {
	if fileio.IsRemote(path) {
		return openRemote(path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
			return nil, fmt.Errorf("%w: %s is a directory without config.json", ErrUnknownFormat, path)
		}
		return hf.Open(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err == nil && bytes.Equal(magic[:], []byte(gguf.Magic)) {
		return gguf.OpenModel(path)
	}
	if filepath.Base(path) == "config.json" {
		return nil, fmt.Errorf("%w: %s: pass the model directory, not its config.json", ErrUnknownFormat, path)
	}
	return nil, fmt.Errorf("%w: %s is neither a GGUF file nor a Hugging Face model directory", ErrUnknownFormat, path)
}
