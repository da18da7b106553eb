package cpu_test

import (
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

// FuzzGemm checks Sgemm and Dgemm of every micro-kernel on fuzzed shapes,
// transposes, strides and alpha/beta against the float64 reference, with
// guard elements around every operand. Sizes are bounded (m, n < 160,
// k < 600) to keep the reference cheap while crossing the cache blocks and
// the parallel threshold.
func FuzzGemm(f *testing.F) {
	f.Add(false, true, uint16(151), uint16(37), uint16(300), uint8(0x21), int8(4), int8(0), uint64(1))
	f.Add(true, false, uint16(13), uint16(150), uint16(520), uint8(0x10), int8(-2), int8(3), uint64(2))
	f.Add(true, true, uint16(1), uint16(1), uint16(1), uint8(0), int8(1), int8(1), uint64(3))
	f.Add(false, false, uint16(127), uint16(129), uint16(257), uint8(0x33), int8(1), int8(-4), uint64(4))
	backends := []*cpu.Backend{cpu.New(0)}
	for _, name := range cpu.SIMDs() {
		b, err := cpu.NewWithSIMD(3, name)
		if err != nil {
			f.Fatal(err)
		}
		backends = append(backends, b)
	}
	f.Fuzz(func(t *testing.T, transA, transB bool, m, n, k uint16, pads uint8, alpha, beta int8, seed uint64) {
		c := kerneltest.Case{
			TransA: transA, TransB: transB,
			M: int(m % 160), N: int(n % 160), K: int(k % 600),
			Alpha: float64(alpha) / 4, Beta: float64(beta) / 4,
			PadA: int(pads & 3), PadB: int(pads >> 2 & 3), PadC: int(pads >> 4 & 7),
		}
		for _, b := range backends {
			kerneltest.CheckSgemm(t, b, c, seed)
			kerneltest.CheckDgemm(t, b, c, seed)
		}
	})
}
