package prune

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/optima-llm/optima/model"
)

// hiddenMagic starts a hidden-state shard file.
const hiddenMagic = "OPTHID01"

// hiddenHeader is the byte length of a shard file's header: magic, then nseq,
// seqlen, hidden as little-endian uint32.
const hiddenHeader = len(hiddenMagic) + 12

// WriteHidden writes hidden states x ([nseq·seqlen, hidden] float32) to path
// atomically (temporary name in the same directory, then rename).
func WriteHidden(path string, x []float32, nseq, seqlen, hidden int) error {
	if len(x) != nseq*seqlen*hidden {
		panic(fmt.Sprintf("prune: WriteHidden: len(x)=%d, want %d×%d×%d", len(x), nseq, seqlen, hidden))
	}
	buf := make([]byte, hiddenHeader+4*len(x))
	copy(buf, hiddenMagic)
	binary.LittleEndian.PutUint32(buf[8:], uint32(nseq))
	binary.LittleEndian.PutUint32(buf[12:], uint32(seqlen))
	binary.LittleEndian.PutUint32(buf[16:], uint32(hidden))
	for i, v := range x {
		binary.LittleEndian.PutUint32(buf[hiddenHeader+4*i:], math.Float32bits(v))
	}
	return WriteFileAtomic(path, buf)
}

// ReadHidden reads a shard written by WriteHidden. Errors name the file.
func ReadHidden(path string) (x []float32, nseq, seqlen, hidden int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states: %w", err)
	}
	hdr := make([]byte, hiddenHeader)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[:8]) != hiddenMagic {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: not a shard file", path)
	}
	nseq = int(binary.LittleEndian.Uint32(hdr[8:]))
	seqlen = int(binary.LittleEndian.Uint32(hdr[12:]))
	hidden = int(binary.LittleEndian.Uint32(hdr[16:]))
	n := int64(nseq) * int64(seqlen) * int64(hidden)
	if n*4+int64(hiddenHeader) != st.Size() {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: size %d does not match %d×%d×%d", path, st.Size(), nseq, seqlen, hidden)
	}
	raw := make([]byte, 4*n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: %w", path, err)
	}
	x = make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x, nseq, seqlen, hidden, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed, so that path never holds a partial file.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// LoadWeights reads the named tensors from src.
func LoadWeights(src model.Source, names []string) (model.Weights, error) {
	w := make(model.Weights, len(names))
	for _, n := range names {
		t, err := src.Load(n)
		if err != nil {
			return nil, err
		}
		w[n] = t
	}
	return w, nil
}
