package cpu

// NewGeneric returns a backend that uses the portable micro-kernel even where
// an assembly one exists, so tests cover both.
func NewGeneric(threads int) *Backend {
	b := New(threads)
	b.kern = genericKernel
	return b
}
