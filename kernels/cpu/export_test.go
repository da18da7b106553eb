package cpu

// KernelNames lists the micro-kernels this CPU runs, fastest first.
func KernelNames() []string {
	var names []string
	for _, k := range microKernels() {
		names = append(names, k.name)
	}
	return names
}

// NewWithKernel returns a backend that uses the named micro-kernel, so tests
// cover every kernel the CPU runs, not only the fastest.
func NewWithKernel(threads int, name string) *Backend {
	b := New(threads)
	for _, k := range microKernels() {
		if k.name == name {
			b.kern = k
			return b
		}
	}
	panic("cpu: no kernel " + name)
}
