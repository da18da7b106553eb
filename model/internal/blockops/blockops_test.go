package blockops

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
)

func TestParallelForCoversEachIndexOnce(t *testing.T) {
	for _, c := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 3}, {100, 8}, {5, 1}} {
		hits := make([]atomic.Int32, c.n)
		ParallelFor(c.n, c.workers, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Fatalf("n=%d workers=%d: index %d visited %d times", c.n, c.workers, i, h)
			}
		}
	}
}

func TestTensorErrorsNameTensor(t *testing.T) {
	w := model.Weights{"a.weight": {Name: "a.weight", Shape: []int{2, 3}, Data: make([]float32, 6)}}
	if _, err := Tensor("opt", w, "a.weight", 2, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		shape []int
		want  string
	}{{"b.weight", []int{1}, "opt: missing tensor b.weight"}, {"a.weight", []int{3, 2}, "opt: tensor a.weight: shape [2 3]"}} {
		if _, err := Tensor("opt", w, c.name, c.shape...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Tensor(%s, %v): err %v, want %q", c.name, c.shape, err, c.want)
		}
	}
}

func TestLinearApplyAddsBias(t *testing.T) {
	l := Linear{W: []float32{1, 2, 3, 4}, B: []float32{10, 20}, Out: 2, In: 2}
	x := []float32{1, 1}
	y := make([]float32, 2)
	l.Apply(cpu.New(1), x, 1, y)
	if y[0] != 13 || y[1] != 27 {
		t.Errorf("y = %v, want [13 27]", y)
	}
}
