package cpu_test

import (
	"fmt"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

func TestConformance(t *testing.T) {
	for _, threads := range []int{0, 1, 3} {
		for _, b := range []*cpu.Backend{cpu.New(threads), cpu.NewGeneric(threads)} {
			t.Run(fmt.Sprintf("%s/threads=%d", b.Capabilities().SIMD, threads), func(t *testing.T) {
				kerneltest.Run(t, b)
			})
		}
	}
}
