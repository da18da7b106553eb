package prune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

// WriteTensors writes a block's pruned linears to path (float32
// safetensors, atomically), a local path or a gs:// URL; a gs:// file is
// written locally first and uploaded as one object.
func WriteTensors(path string, tensors []*model.Tensor) error {
	_, err := WriteTensorsSum(path, tensors)
	return err
}

// WriteTensorsSum is WriteTensors that also returns the hex SHA-256 of the
// file (for BlockDone.WeightsSHA256), hashed from the bytes as they are
// written (safetensors.WriteFileTee), with no read back.
func WriteTensorsSum(path string, tensors []*model.Tensor) (string, error) {
	h := sha256.New()
	sum := func() string { return hex.EncodeToString(h.Sum(nil)) }
	if !fileio.IsRemote(path) {
		if err := safetensors.WriteFileTee(path, tensors, safetensors.WriteOptions{}, h); err != nil {
			return "", err
		}
		return sum(), nil
	}
	dir, err := os.MkdirTemp("", "optima-tensors-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, fileio.Base(path))
	if err := safetensors.WriteFileTee(tmp, tensors, safetensors.WriteOptions{}, h); err != nil {
		return "", err
	}
	if err := fileio.CopyFile(context.Background(), tmp, path); err != nil {
		return "", err
	}
	return sum(), nil
}

// openTensors opens a safetensors file at a local path or a gs:// URL (read
// by ranges).
func openTensors(path string) (*safetensors.File, error) {
	if !fileio.IsRemote(path) {
		return safetensors.Open(path)
	}
	r, err := fileio.OpenReaderAt(context.Background(), path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := safetensors.NewFile(r, path)
	if err != nil {
		r.Close()
		return nil, err
	}
	return f, nil
}

// ReadTensors reads every tensor of a file written by WriteTensors.
func ReadTensors(path string) (map[string]*model.Tensor, error) {
	f, err := openTensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*model.Tensor{}
	for _, n := range f.Names() {
		t, err := f.Load(n)
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}
