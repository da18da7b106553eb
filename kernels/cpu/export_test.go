package cpu

// KernelNames lists the micro-kernels this CPU runs, fastest first.
func KernelNames() []string {
	var names []string
	for _, k := range microKernels32() {
		names = append(names, k.name)
	}
	return names
}

// NewWithKernel returns a backend that uses the named float32 and float64
// micro-kernels, so tests cover every kernel the CPU runs, not only the
// fastest.
func NewWithKernel(threads int, name string) *Backend {
	b := New(threads)
	for _, k := range microKernels32() {
		if k.name == name {
			b.kern32 = k
		}
	}
	for _, k := range microKernels64() {
		if k.name == name {
			b.kern64 = k
		}
	}
	if b.kern32.name != name || b.kern64.name != name {
		panic("cpu: no kernel " + name)
	}
	return b
}
