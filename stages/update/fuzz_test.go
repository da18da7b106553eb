package update

import "testing"

// FuzzParseOptions: parameter strings never panic the parser, and whatever it
// accepts is a usable configuration.
func FuzzParseOptions(f *testing.F) {
	f.Add("sparsegpt", "blocksize", "64")
	f.Add("admm", "iters", "3")
	f.Add("admm", "rho", "-1")
	f.Add("thanos", "damping", "NaN")
	f.Add("sparsegpt", "bits", "4")
	f.Add("sparsegpt", "group_size", "32")
	f.Add("thanos", "bits", "4")
	f.Fuzz(func(t *testing.T, name, k, v string) {
		o, err := ParseOptions(name, map[string]string{k: v})
		if err != nil {
			return
		}
		if name == "admm" {
			if o.Iters <= 0 || o.PruneIters <= 0 || o.PruneIters > o.Iters || !(o.Rho > 0) {
				t.Fatalf("accepted %s=%q: %+v", k, v, o)
			}
		} else if o.BlockSize <= 0 {
			t.Fatalf("accepted %s=%q: %+v", k, v, o)
		}
		if q := o.Quant; q != nil && (name != "sparsegpt" || q.Bits < 2 || q.Bits > 8 || q.GroupSize < 0) {
			t.Fatalf("accepted %s=%q: joint quantization %+v", k, v, *q)
		}
		if !(o.Damping >= 0 && o.Damping <= 1) {
			t.Fatalf("accepted %s=%q: damping %v", k, v, o.Damping)
		}
	})
}
