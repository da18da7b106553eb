package update

import "testing"

// FuzzParseOptions: parameter strings never panic the parser, and whatever it
// accepts is a usable configuration.
func FuzzParseOptions(f *testing.F) {
	f.Add("sparsegpt", "blocksize", "64")
	f.Add("admm", "iters", "3")
	f.Add("admm", "rho", "-1")
	f.Add("thanos", "damping", "NaN")
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
		if !(o.Damping >= 0 && o.Damping <= 1) {
			t.Fatalf("accepted %s=%q: damping %v", k, v, o.Damping)
		}
	})
}
