package transforms

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/solve"
)

func randomBatch(r *rand.Rand, rows, in int, withMask bool) RowBatch {
	b := RowBatch{Block: 3, Linear: "model.layers.3.mlp.down_proj", Group: "model.layers.3.mlp.down_proj",
		Start: 7, Rows: rows, In: in, Out: 99, W: make([]float32, rows*in), Seconds: 1.5,
		Result: prune.BatchResult{Pruned: 4, Stats: solve.Stats{Rows: rows, Iterations: 12, ObjBefore: 2.5, ObjAfter: 1.25, Denom: 10}}}
	for i := range b.W {
		b.W[i] = float32(r.NormFloat64())
	}
	if withMask {
		b.Pruned = make([]bool, rows*in)
		for i := range b.Pruned {
			b.Pruned[i] = r.IntN(2) == 0
		}
	}
	return b
}

func TestRowBatchCoderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		rows, in int
		mask     bool
	}{{0, 5, false}, {1, 1, true}, {3, 17, true}, {8, 64, false}, {5, 13, true}} {
		b := randomBatch(r, tc.rows, tc.in, tc.mask)
		enc, err := encodeRowBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		// Raw payload: 4 bytes per weight plus one bit per mask entry, not a
		// per-float encoding.
		payload := 4*len(b.W) + (len(b.Pruned)+7)/8
		if len(enc) < payload || len(enc) > payload+400 {
			t.Errorf("%d×%d: %d encoded bytes for a %d-byte payload", tc.rows, tc.in, len(enc), payload)
		}
		got, err := decodeRowBatch(enc)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(b, got, cmp.Comparer(func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) })); d != "" && !(len(b.W) == 0 && len(got.W) == 0) {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
	}
}

func TestRowBatchCoderErrors(t *testing.T) {
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), 2, 3, true)
	b.W = b.W[:5]
	if _, err := encodeRowBatch(b); err == nil {
		t.Error("encoding a batch whose weights do not match Rows×In succeeded")
	}
	b = randomBatch(rand.New(rand.NewPCG(3, 4)), 2, 3, true)
	enc, _ := encodeRowBatch(b)
	for _, n := range []int{0, 3, 10, len(enc) - 1} {
		if _, err := decodeRowBatch(enc[:n]); err == nil {
			t.Errorf("decoding %d of %d bytes succeeded", n, len(enc))
		}
	}
}

func TestHessianCoderZeroAccumulator(t *testing.T) {
	enc, err := encodeHessian(hessian.Hessian{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeHessian(enc)
	if err != nil || got.In != 0 || got.Group != "" {
		t.Fatalf("zero accumulator round trip: %+v, %v", got, err)
	}
	h := hessian.New("g", 2)
	h.Sum = []float64{4, 1, 1, 3}
	h.Tokens = 9
	enc, err = encodeHessian(*h)
	if err != nil {
		t.Fatal(err)
	}
	got, err = decodeHessian(enc)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(*h, got, cmp.AllowUnexported(hessian.Hessian{})); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func FuzzRowBatchCoder(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, m := range []bool{false, true} {
		enc, _ := encodeRowBatch(randomBatch(r, 2, 5, m))
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeRowBatch(data)
		if err != nil {
			return
		}
		enc, err := encodeRowBatch(b)
		if err != nil {
			t.Fatalf("re-encoding a decoded batch: %v", err)
		}
		b2, err := decodeRowBatch(enc)
		if err != nil {
			t.Fatal(err)
		}
		if b2.Rows != b.Rows || b2.In != b.In || len(b2.W) != len(b.W) || (b.Pruned == nil) != (b2.Pruned == nil) {
			t.Fatalf("round trip changed the batch shape")
		}
	})
}
