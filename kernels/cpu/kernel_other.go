//go:build !amd64

package cpu

// microKernels32 returns the generic kernel: there is no assembly for this
// architecture.
func microKernels32() []microKernel[float32] { return []microKernel[float32]{genericKernel32} }

// microKernels64 returns the generic kernel.
func microKernels64() []microKernel[float64] { return []microKernel[float64]{genericKernel64} }

// transpose8 has no portable implementation; packB falls back to Go.
var transpose8 func(src *float32, lds int, dst *float32, ldd int, blocks int)
