package prune

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/optima-llm/optima/internal/fileio"
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

// ReadHidden reads a shard written by WriteHidden, from a local path or a
// gs:// URL (internal/fileio). Errors name the file.
func ReadHidden(path string) (x []float32, nseq, seqlen, hidden int, err error) {
	raw, err := fileio.ReadFile(context.Background(), path)
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states: %w", err)
	}
	if len(raw) < hiddenHeader || string(raw[:8]) != hiddenMagic {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: not a shard file", path)
	}
	nseq = int(binary.LittleEndian.Uint32(raw[8:]))
	seqlen = int(binary.LittleEndian.Uint32(raw[12:]))
	hidden = int(binary.LittleEndian.Uint32(raw[16:]))
	n := int64(nseq) * int64(seqlen) * int64(hidden)
	if n*4+int64(hiddenHeader) != int64(len(raw)) {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: size %d does not match %d×%d×%d", path, len(raw), nseq, seqlen, hidden)
	}
	raw = raw[hiddenHeader:]
	x = make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x, nseq, seqlen, hidden, nil
}

// WriteFileAtomic writes data to path so that path never holds a partial
// file: locally through a temporary file in the same directory, synced and
// renamed; on gs:// as one object upload (internal/fileio.WriteFile).
func WriteFileAtomic(path string, data []byte) error {
	return fileio.WriteFile(context.Background(), path, data)
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
