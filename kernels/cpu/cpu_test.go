package cpu_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

func TestConformance(t *testing.T) {
	// The default backend (fastest kernel, GOMAXPROCS threads), then every
	// kernel this CPU runs on an odd thread count. Products below the
	// parallel threshold run on one goroutine in every configuration.
	t.Run("default", func(t *testing.T) { kerneltest.Run(t, cpu.New(0)) })
	for _, name := range cpu.SIMDs() {
		t.Run(fmt.Sprintf("%s/threads=3", name), func(t *testing.T) {
			b, err := cpu.NewWithSIMD(3, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Capabilities().SIMD; got != name {
				t.Errorf("Capabilities().SIMD = %q, want %q", got, name)
			}
			kerneltest.Run(t, b)
		})
	}
}

func TestNewWithSIMDUnknown(t *testing.T) {
	_, err := cpu.NewWithSIMD(1, "neon-sve9")
	if err == nil || !strings.Contains(err.Error(), "generic") {
		t.Errorf("NewWithSIMD(unknown) error = %v, want one listing the known sets", err)
	}
}

func TestNewDefaults(t *testing.T) {
	c := cpu.New(0).Capabilities()
	if c.Threads != runtime.GOMAXPROCS(0) {
		t.Errorf("New(0).Threads = %d, want GOMAXPROCS %d", c.Threads, runtime.GOMAXPROCS(0))
	}
	if want := cpu.SIMDs()[0]; c.SIMD != want {
		t.Errorf("New(0).SIMD = %q, want the fastest, %q", c.SIMD, want)
	}
	if got := cpu.New(5).Capabilities().Threads; got != 5 {
		t.Errorf("New(5).Threads = %d", got)
	}
}
