package cuda

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestCopyParts checks that copyParts covers [0, n) exactly with at most
// maxParts contiguous ranges, each at least minPart long unless there is
// only one.
func TestCopyParts(t *testing.T) {
	for _, c := range []struct{ n, maxParts, minPart int }{
		{0, 8, 1 << 20}, {1, 8, 1 << 20}, {1 << 20, 8, 1 << 20}, {2<<20 - 1, 8, 1 << 20}, {2 << 20, 8, 1 << 20},
		{32<<20 + 12, 8, 1 << 20}, {1000, 3, 1}, {7, 16, 1}, {100, 1, 0}, {33 << 20, 16, 1 << 20},
	} {
		t.Run(fmt.Sprintf("n=%d/max=%d/min=%d", c.n, c.maxParts, c.minPart), func(t *testing.T) {
			parts := copyParts(c.n, c.maxParts, c.minPart)
			if c.n == 0 {
				if len(parts) != 0 {
					t.Fatalf("copyParts(0) = %v", parts)
				}
				return
			}
			if len(parts) == 0 || len(parts) > max(1, c.maxParts) {
				t.Fatalf("%d parts, want 1..%d", len(parts), c.maxParts)
			}
			next := 0
			for _, r := range parts {
				if r[0] != next || r[1] <= r[0] {
					t.Fatalf("parts %v do not tile [0, %d)", parts, c.n)
				}
				if len(parts) > 1 && r[1]-r[0] < c.minPart && r[1] != c.n {
					t.Errorf("part %v shorter than %d", r, c.minPart)
				}
				next = r[1]
			}
			if next != c.n {
				t.Fatalf("parts %v end at %d, want %d", parts, next, c.n)
			}
		})
	}
}

// TestHostCopy checks hostCopy's parallel copy against the source, for
// lengths around the 1 MiB part size.
func TestHostCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 1<<20 - 1, 3<<20 + 5} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		dst := make([]byte, n)
		var wg sync.WaitGroup
		hostCopy(&wg, dst, src)
		wg.Wait()
		for i := range src {
			if dst[i] != src[i] {
				t.Fatalf("n=%d: byte %d = %d, want %d", n, i, dst[i], src[i])
			}
		}
	}
}

// TestGatherChunk checks the chunk size of CholeskySolveGathered: within
// [1, batch] and within the budget whenever one matrix fits.
func TestGatherChunk(t *testing.T) {
	for _, c := range []struct {
		batch, n int
		budget   int64
		want     int
	}{
		{8, 2048, 4 << 30, 8}, {1000, 2048, 4 << 30, 127}, {5, 33, 20000, 2}, {5, 50, 20000, 1}, {5, 1000, 1, 1}, {3, 1, 1 << 40, 3},
	} {
		got := gatherChunk(c.batch, c.n, c.budget)
		if got != c.want {
			t.Errorf("gatherChunk(%d, %d, %d) = %d, want %d", c.batch, c.n, c.budget, got, c.want)
		}
		if per := int64(8*(c.n*c.n+c.n) + 4*c.n + 20); got > 1 && int64(got)*per > c.budget {
			t.Errorf("gatherChunk(%d, %d, %d) = %d chunks of %d bytes: over budget", c.batch, c.n, c.budget, got, per)
		}
	}
}

// TestGatheredPanics checks the argument checks of CholeskySolveGathered,
// which come before any device work (so they run without a GPU).
func TestGatheredPanics(t *testing.T) {
	h := make([]float64, 16)
	for _, c := range []struct {
		name      string
		in, n, nb int
		h         []float64
		kept      []int32
		x         []float64
	}{
		{"kept_out_of_range", 4, 2, 1, h, []int32{1, 4}, make([]float64, 2)},
		{"kept_negative", 4, 2, 1, h, []int32{-1, 2}, make([]float64, 2)},
		{"short_kept", 4, 2, 2, h, []int32{0, 1, 2}, make([]float64, 4)},
		{"short_x", 4, 2, 2, h, []int32{0, 1, 2, 3}, make([]float64, 3)},
		{"n_above_in", 4, 5, 1, h, make([]int32, 5), make([]float64, 5)},
		{"short_h", 4, 1, 1, h[:15], []int32{0}, make([]float64, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			(&Backend{}).CholeskySolveGathered(1, c.in, c.h, c.n, c.nb, c.kept, c.x)
		})
	}
}
