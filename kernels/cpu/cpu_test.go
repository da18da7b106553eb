package cpu_test

import (
	"fmt"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

func TestConformance(t *testing.T) {
	for _, threads := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			kerneltest.Run(t, cpu.New(threads))
		})
	}
}
