//go:build !amd64

package cpu

// microKernels returns the portable micro-kernel: there is no assembly for this
// architecture.
func microKernels() []microKernel { return []microKernel{genericKernel} }
