package transforms

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/prune"
)

func tinyOptions(t *testing.T) Options {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, _, err := tinymodel.Write(dir, tinymodel.Default()); err != nil {
		t.Fatal(err)
	}
	cfg := prune.Config{Model: dir, Method: "wanda", Sparsity: 0.5, Update: prune.UpdateOptima}
	return Options{Config: cfg, WorkDir: t.TempDir(), Threads: 1}
}

// held lists the fields of the DoFn struct v (embedded structs included)
// that still hold a model or loaded weights: a handles with an open source
// or family, or a non-nil model.Weights.
func held(v reflect.Value, path string) []string {
	var out []string
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		name := path + sf.Name
		switch {
		case sf.Type == reflect.TypeFor[handles]():
			if !f.FieldByName("src").IsNil() || !f.FieldByName("fam").IsNil() {
				out = append(out, name)
			}
		case sf.Type == reflect.TypeFor[model.Weights]():
			if !f.IsNil() {
				out = append(out, name)
			}
		case sf.Anonymous && f.Kind() == reflect.Struct:
			out = append(out, held(f, name+".")...)
		}
	}
	return out
}

// TestFinishBundleReleases checks that every DoFn that opens the model or
// caches weights lets go of them in FinishBundle: the Go SDK harness keeps
// each bundle processor (and its DoFns) until the worker ends, so with one
// pipeline over all blocks, state kept past a bundle accumulates block after
// block (the SmolLM2 prune grew by about 80 MB of heap per block).
func TestFinishBundleReleases(t *testing.T) {
	opts := tinyOptions(t)
	dense := model.Weights{"w": {Name: "w", Shape: []int{1}, Data: []float32{1}}}
	tests := []struct {
		name string
		fn   any
	}{
		{"embed", &embedFn{Opts: opts}},
		{"loadBlock", &loadBlockFn{Opts: opts}},
		{"calibrate", &calibrateFn{Opts: opts, dense: dense}},
		{"writeBlock", &writeBlockFn{Opts: opts}},
		{"writeCompressedBlock", &writeCompressedBlockFn{writeBlockFn{Opts: opts}}},
		{"propagate", &propagateFn{Opts: opts, w: dense}},
		{"writeModel", &writeModelFn{Opts: opts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn.(interface{ Setup() error }).Setup(); err != nil {
				t.Fatal(err)
			}
			v := reflect.ValueOf(tt.fn).Elem()
			if len(held(v, "")) == 0 {
				t.Fatal("nothing held after Setup: the check below would pass vacuously")
			}
			fb, ok := tt.fn.(interface{ FinishBundle() error })
			if !ok {
				t.Fatalf("%T has no FinishBundle() error; it keeps %v for the rest of the run", tt.fn, held(v, ""))
			}
			if err := fb.FinishBundle(); err != nil {
				t.Fatal(err)
			}
			if h := held(v, ""); len(h) > 0 {
				t.Errorf("%T still holds %v after FinishBundle", tt.fn, h)
			}
		})
	}
}

// TestCalibrateAcrossBundles checks that a calibrateFn whose FinishBundle
// released the model and weights reopens them and computes the same
// Hessians in its next bundle.
func TestCalibrateAcrossBundles(t *testing.T) {
	opts := tinyOptions(t)
	o := tinymodel.Default()
	const nseq, seqlen = 2, 8
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, nseq*seqlen*o.Hidden)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	sh := Shard{Block: 1, Index: 0, Path: filepath.Join(t.TempDir(), "h.bin"), NSeq: nseq, SeqLen: seqlen, Hidden: o.Hidden}
	if err := prune.WriteHidden(sh.Path, x, nseq, seqlen, o.Hidden); err != nil {
		t.Fatal(err)
	}
	f := &calibrateFn{Opts: opts, Block: 1}
	if err := f.Setup(); err != nil {
		t.Fatal(err)
	}
	bundle := func() map[string]hessian.Hessian {
		got := map[string]hessian.Hessian{}
		if err := f.ProcessElement(context.Background(), sh, func(g string, h hessian.Hessian) { got[g] = h }); err != nil {
			t.Fatal(err)
		}
		fb, ok := any(f).(interface{ FinishBundle() error })
		if !ok {
			t.Fatal("calibrateFn has no FinishBundle() error")
		}
		if err := fb.FinishBundle(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := bundle()
	if len(first) == 0 {
		t.Fatal("no Hessians emitted")
	}
	if diff := cmp.Diff(first, bundle()); diff != "" {
		t.Errorf("second bundle's Hessians differ (-first +second):\n%s", diff)
	}
	f.Teardown()
}
