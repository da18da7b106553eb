package prune

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

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
	_, err := WriteHiddenSum(path, x, nseq, seqlen, hidden)
	return err
}

// WriteHiddenSum is WriteHidden that also returns the hex SHA-256 of the
// bytes written (for ShardRef.SHA256), hashed from the buffer being written.
func WriteHiddenSum(path string, x []float32, nseq, seqlen, hidden int) (string, error) {
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
	sum := sha256.Sum256(buf)
	if err := WriteFileAtomic(path, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// shardHeader parses a shard file's header h (at least hiddenHeader
// bytes): the magic, then nseq, seqlen, hidden.
func shardHeader(h []byte) (nseq, seqlen, hidden int64, ok bool) {
	if len(h) < hiddenHeader || string(h[:len(hiddenMagic)]) != hiddenMagic {
		return 0, 0, 0, false
	}
	le := binary.LittleEndian
	return int64(le.Uint32(h[8:])), int64(le.Uint32(h[12:])), int64(le.Uint32(h[16:])), true
}

// shardBytes is the byte size of a shard file of nseq×seqlen×hidden float32
// values (header included), and false when that overflows an int64.
func shardBytes(nseq, seqlen, hidden int64) (int64, bool) {
	hi, n := bits.Mul64(uint64(nseq), uint64(seqlen))
	if hi != 0 {
		return 0, false
	}
	if hi, n = bits.Mul64(n, uint64(hidden)); hi != 0 || n > (math.MaxInt64-uint64(hiddenHeader))/4 {
		return 0, false
	}
	return int64(hiddenHeader) + 4*int64(n), true
}

// CheckShardHeader checks a shard file of size bytes read through r against
// ref, the reference a done marker holds for it: the magic, the dimensions
// (ref.NSeq, ref.SeqLen, ref.Hidden) and the size they need. It reads the
// header only; the contents are CheckSHA256's. Errors describe the
// mismatch; callers add the file name.
func CheckShardHeader(r io.ReaderAt, size int64, ref ShardRef) error {
	if size < int64(hiddenHeader) {
		return fmt.Errorf("%d bytes, shorter than the header", size)
	}
	var h [hiddenHeader]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return err
	}
	nseq, seqlen, hid, ok := shardHeader(h[:])
	if !ok {
		return errors.New("not a hidden-state shard file")
	}
	if nseq != int64(ref.NSeq) || seqlen != int64(ref.SeqLen) || hid != int64(ref.Hidden) {
		return fmt.Errorf("header %d×%d×%d, the done marker says %d×%d×%d", nseq, seqlen, hid, ref.NSeq, ref.SeqLen, ref.Hidden)
	}
	if want, ok := shardBytes(nseq, seqlen, hid); !ok || size != want {
		return fmt.Errorf("%d bytes, want %d for %d×%d×%d float32", size, want, nseq, seqlen, hid)
	}
	return nil
}

// ReadHidden reads a shard written by WriteHidden, from a local path or a
// gs:// URL (internal/fileio). Errors name the file.
func ReadHidden(path string) (x []float32, nseq, seqlen, hidden int, err error) {
	raw, err := fileio.ReadFile(context.Background(), path)
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states: %w", err)
	}
	ns, sl, hd, ok := shardHeader(raw)
	if !ok {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: not a shard file", path)
	}
	nseq, seqlen, hidden = int(ns), int(sl), int(hd)
	if want, ok := shardBytes(ns, sl, hd); !ok || want != int64(len(raw)) {
		return nil, 0, 0, 0, fmt.Errorf("read hidden states %s: size %d does not match %d×%d×%d", path, len(raw), nseq, seqlen, hidden)
	}
	raw = raw[hiddenHeader:]
	x = make([]float32, ns*sl*hd)
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
