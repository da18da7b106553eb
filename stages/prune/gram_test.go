package prune

import (
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/model/llama"
	"github.com/optima-llm/optima/stages/solve"
)

// gramOnly is a fake GPU backend: AccumulateGram runs the CPU backend's and
// then multiplies what it added by scale (so a test can tell whose Gram
// reached the Hessian), recording the widths it saw; every other operation
// panics, so a forward pass routed to it fails the test.
type gramOnly struct {
	kernels.Backend // nil: any other method panics
	cpu             kernels.Backend
	scale           float64
	mu              sync.Mutex
	widths          []int
}

func (g *gramOnly) AccumulateGram(h []float64, x []float32, tokens, in int) {
	g.mu.Lock()
	g.widths = append(g.widths, in)
	g.mu.Unlock()
	before := append([]float64(nil), h[:in*in]...)
	g.cpu.AccumulateGram(h, x, tokens, in)
	for i, b := range before {
		h[i] = b + g.scale*(h[i]-b)
	}
}

func calibrateTiny(t *testing.T, be kernels.Backend) map[string][]float64 {
	t.Helper()
	o := tinymodel.Default()
	fam, err := llama.New(tinymodel.Config(o))
	if err != nil {
		t.Fatal(err)
	}
	const nseq, seqlen = 2, 24
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, nseq*seqlen*o.Hidden)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	hs, err := CalibrateShard(be, fam, 0, tinymodel.Weights(o), x, nseq, seqlen)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float64{}
	for g, h := range hs {
		if h.Tokens != nseq*seqlen {
			t.Errorf("group %s: %d tokens, want %d", g, h.Tokens, nseq*seqlen)
		}
		out[g] = h.Sum
	}
	return out
}

func TestWithGramRoutesOnlyTheGram(t *testing.T) {
	c := cpu.New(2)
	want := calibrateTiny(t, c)
	for _, tc := range []struct {
		name  string
		scale float64
	}{{"same Gram: bit-identical", 1}, {"marked Gram reaches the Hessian", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &gramOnly{cpu: c, scale: tc.scale}
			got := calibrateTiny(t, WithGram(c, fake))
			scaled := map[string][]float64{}
			for g, s := range want {
				scaled[g] = make([]float64, len(s))
				for i, v := range s {
					scaled[g][i] = tc.scale * v
				}
			}
			if diff := cmp.Diff(scaled, got); diff != "" {
				t.Errorf("Hessians through WithGram differ from %g × the CPU's (-want +got):\n%s", tc.scale, diff)
			}
			// Llama block: q/k/v input, o_proj input, gate/up input,
			// down_proj input, each once per shard.
			sort.Ints(fake.widths)
			o := tinymodel.Default()
			if diff := cmp.Diff([]int{o.Hidden, o.Hidden, o.Hidden, o.Intermediate}, fake.widths); diff != "" {
				t.Errorf("AccumulateGram widths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithGramKeepsIdentity(t *testing.T) {
	c := cpu.New(1)
	w := WithGram(c, &gramOnly{cpu: c, scale: 1})
	if w.Name() != c.Name() || w.Capabilities() != c.Capabilities() {
		t.Errorf("WithGram: Name %q Capabilities %+v, want the base backend's %q %+v", w.Name(), w.Capabilities(), c.Name(), c.Capabilities())
	}
}

func TestGramBackend(t *testing.T) {
	c := cpu.New(1)
	for _, dev := range []string{"", "cpu"} {
		got, err := GramBackend(c, dev)
		if err != nil || got != kernels.Backend(c) {
			t.Errorf("GramBackend(cpu, %q) = %v, %v; want the CPU backend itself", dev, got, err)
		}
	}
	if _, err := GramBackend(c, "tpu"); !errors.Is(err, solve.ErrInvalidOptions) {
		t.Errorf("GramBackend(tpu) error %v, want solve.ErrInvalidOptions", err)
	}
	// --device cuda: the shared CUDA backend for the Gram products where a
	// GPU is usable, else an error wrapping cuda.ErrUnavailable (never the
	// CPU silently).
	got, err := GramBackend(c, "cuda")
	switch {
	case err != nil:
		if !errors.Is(err, cuda.ErrUnavailable) {
			t.Errorf("GramBackend(cuda) error %v, want one wrapping cuda.ErrUnavailable", err)
		}
	default:
		r, ok := got.(routed)
		if !ok || r.Backend != kernels.Backend(c) {
			t.Fatalf("GramBackend(cuda) = %T, want WithGram over the CPU backend", got)
		}
		if _, ok := r.gram.(*cuda.Backend); !ok {
			t.Errorf("GramBackend(cuda) routes the Gram to %T, want *cuda.Backend", r.gram)
		}
		if r.gemm != nil {
			t.Errorf("GramBackend(cuda) routes Sgemm to %T, want the forward on the CPU", r.gemm)
		}
	}
}

// gramSetter is gramOnly with kernels.GramSetter: SetGram records the width
// in sets and sets h as the CPU backend's AccumulateGram on zeros would.
type gramSetter struct {
	gramOnly
	sets []int
}

func (g *gramSetter) SetGram(h []float64, x []float32, tokens, in int) {
	g.mu.Lock()
	g.sets = append(g.sets, in)
	g.mu.Unlock()
	clear(h[:in*in])
	g.cpu.AccumulateGram(h, x, tokens, in)
}

// TestWithGramSetGram: through WithGram (and WithGPUGemm on top), a Gram
// backend with SetGram gets each shard's first product of every group as
// SetGram, not AccumulateGram (kernels/cuda then skips the upload of the
// zero Hessian), and the Hessians are bit-identical to the CPU's.
func TestWithGramSetGram(t *testing.T) {
	c := cpu.New(2)
	want := calibrateTiny(t, c)
	for _, tc := range []struct {
		name string
		wrap func(gram kernels.Backend) kernels.Backend
	}{
		{"WithGram", func(g kernels.Backend) kernels.Backend { return WithGram(c, g) }},
		{"WithGram then WithGPUGemm", func(g kernels.Backend) kernels.Backend {
			return WithGPUGemm(WithGram(c, g), c, DefaultGemmRoute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &gramSetter{gramOnly: gramOnly{cpu: c, scale: 1}}
			got := calibrateTiny(t, tc.wrap(fake))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Hessians differ from the CPU's (-want +got):\n%s", diff)
			}
			sort.Ints(fake.sets)
			o := tinymodel.Default()
			if diff := cmp.Diff([]int{o.Hidden, o.Hidden, o.Hidden, o.Intermediate}, fake.sets); diff != "" {
				t.Errorf("SetGram widths (-want +got):\n%s", diff)
			}
			if len(fake.widths) != 0 {
				t.Errorf("AccumulateGram called for widths %v; a shard's first product should be SetGram", fake.widths)
			}
		})
	}
}
