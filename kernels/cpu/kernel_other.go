//go:build !amd64

package cpu

// bestKernel returns the portable micro-kernel: there is no assembly for
// this architecture.
func bestKernel() microKernel { return genericKernel }
