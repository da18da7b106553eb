package cpu_test

import (
	"fmt"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

func TestConformance(t *testing.T) {
	// The default backend (fastest kernel, GOMAXPROCS threads), then every
	// kernel this CPU runs on an odd thread count. Products below the
	// parallel threshold run on one goroutine in every configuration.
	t.Run("default", func(t *testing.T) { kerneltest.Run(t, cpu.New(0)) })
	for _, name := range cpu.KernelNames() {
		t.Run(fmt.Sprintf("%s/threads=3", name), func(t *testing.T) {
			kerneltest.Run(t, cpu.NewWithKernel(3, name))
		})
	}
}
