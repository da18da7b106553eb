package gemma

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGeglu compares geglu with the tanh form torch evaluates, in float64.
func TestGeglu(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n := 50000
	g, u := make([]float32, n), make([]float32, n)
	for i := range g {
		g[i], u[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64())
	}
	g[0], g[1] = -100, 100
	want := make([]float64, n)
	for i, x := range g {
		x := float64(x)
		want[i] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) * float64(u[i])
	}
	geglu(g, u, 2)
	for i, w := range want {
		if math.Abs(float64(g[i])-w) > 1e-6*math.Max(1, math.Abs(w)) {
			t.Fatalf("geglu[%d] = %g, want %g", i, g[i], w)
		}
	}
}
