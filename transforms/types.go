package transforms

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/prune"
)

// WindowShard is one sample shard of calibration token windows: Tokens holds
// NSeq windows of SeqLen ids one after the other. Small; default coding.
type WindowShard struct {
	Index  int
	SeqLen int
	Tokens []int32
}

// Shard references hidden states on disk entering a block (prune.ShardRef).
type Shard = prune.ShardRef

// RowBatch carries rows [Start, Start+Rows) of one linear's weight
// ([Rows, In] float32) through SelectMask and SolveRowQPs, keyed by the
// Hugging Face module path. It is encoded with a raw little-endian coder
// (encodeRowBatch), never per float.
type RowBatch struct {
	Block  int
	Linear string
	Group  string
	Start  int
	Rows   int
	In     int
	Out    int
	// W is [Rows, In] float32.
	W []float32
	// Pruned is the mask ([Rows, In], true = pruned); nil before SelectMask.
	Pruned []bool
	// Result is filled by SolveRowQPs.
	Result prune.BatchResult
	// Seconds is the wall time SelectMask and SolveRowQPs spent on it.
	Seconds float64
}

type rowBatchMeta struct {
	Block                int
	Linear, Group        string
	Start, Rows, In, Out int
	HasMask              bool
	Result               prune.BatchResult
	Seconds              float64
}

// encodeRowBatch writes: uint32 meta length, meta JSON, W as little-endian
// float32, then the mask as a bitset (LSB first) when present.
func encodeRowBatch(b RowBatch) ([]byte, error) {
	if len(b.W) != b.Rows*b.In {
		return nil, fmt.Errorf("row batch %s: len(W)=%d, want %d×%d", b.Linear, len(b.W), b.Rows, b.In)
	}
	if b.Pruned != nil && len(b.Pruned) != len(b.W) {
		return nil, fmt.Errorf("row batch %s: mask length %d, want %d", b.Linear, len(b.Pruned), len(b.W))
	}
	meta, err := json.Marshal(rowBatchMeta{b.Block, b.Linear, b.Group, b.Start, b.Rows, b.In, b.Out, b.Pruned != nil, b.Result, b.Seconds})
	if err != nil {
		return nil, err
	}
	n := 4 + len(meta) + 4*len(b.W)
	if b.Pruned != nil {
		n += (len(b.Pruned) + 7) / 8
	}
	out := make([]byte, n)
	binary.LittleEndian.PutUint32(out, uint32(len(meta)))
	off := 4 + copy(out[4:], meta)
	for _, v := range b.W {
		binary.LittleEndian.PutUint32(out[off:], math.Float32bits(v))
		off += 4
	}
	for i, p := range b.Pruned {
		if p {
			out[off+i/8] |= 1 << (i % 8)
		}
	}
	return out, nil
}

var errShortRowBatch = errors.New("transforms: truncated row batch")

func decodeRowBatch(data []byte) (RowBatch, error) {
	if len(data) < 4 {
		return RowBatch{}, errShortRowBatch
	}
	ml := int(binary.LittleEndian.Uint32(data))
	if ml > len(data)-4 {
		return RowBatch{}, errShortRowBatch
	}
	var m rowBatchMeta
	if err := json.Unmarshal(data[4:4+ml], &m); err != nil {
		return RowBatch{}, fmt.Errorf("transforms: row batch header: %w", err)
	}
	if m.Rows < 0 || m.In < 0 || (m.In > 0 && m.Rows > (len(data)-4-ml)/(4*m.In)) {
		return RowBatch{}, errShortRowBatch
	}
	n := m.Rows * m.In
	want := 4 + ml + 4*n
	if m.HasMask {
		want += (n + 7) / 8
	}
	if len(data) != want {
		return RowBatch{}, fmt.Errorf("transforms: row batch %s: %d bytes, want %d", m.Linear, len(data), want)
	}
	b := RowBatch{Block: m.Block, Linear: m.Linear, Group: m.Group, Start: m.Start, Rows: m.Rows, In: m.In, Out: m.Out, Result: m.Result, Seconds: m.Seconds}
	off := 4 + ml
	b.W = make([]float32, n)
	for i := range b.W {
		b.W[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		off += 4
	}
	if m.HasMask {
		b.Pruned = make([]bool, n)
		for i := range b.Pruned {
			b.Pruned[i] = data[off+i/8]&(1<<(i%8)) != 0
		}
	}
	return b, nil
}

// encodeHessian encodes a (possibly zero-value accumulator) Hessian.
func encodeHessian(h hessian.Hessian) ([]byte, error) {
	if h.In == 0 && h.Tokens == 0 && h.Group == "" {
		return []byte{}, nil
	}
	return h.MarshalBinary()
}

func decodeHessian(data []byte) (hessian.Hessian, error) {
	if len(data) == 0 {
		return hessian.Hessian{}, nil
	}
	var h hessian.Hessian
	err := h.UnmarshalBinary(data)
	return h, err
}
