package transforms

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
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

// finishBundle calls fn's FinishBundle with nil emitters (Beam requires it
// to take ProcessElement's emitters), or returns an error when fn has none.
func finishBundle(fn any) error {
	m := reflect.ValueOf(fn).MethodByName("FinishBundle")
	if !m.IsValid() {
		return fmt.Errorf("%T has no FinishBundle", fn)
	}
	args := make([]reflect.Value, m.Type().NumIn())
	for i := range args {
		args[i] = reflect.Zero(m.Type().In(i))
	}
	out := m.Call(args)
	if len(out) == 1 && !out[0].IsNil() {
		return out[0].Interface().(error)
	}
	return nil
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
			if err := finishBundle(tt.fn); err != nil {
				t.Fatalf("%v; it keeps %v for the rest of the run", err, held(v, ""))
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
		if err := finishBundle(f); err != nil {
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

// TestGraphAcceptsDoFns lays every transform into a Beam graph, which checks
// the DoFns' method signatures (FinishBundle must take ProcessElement's
// emitters): a DoFn Beam rejects panics here rather than in a run.
func TestGraphAcceptsDoFns(t *testing.T) {
	opts := tinyOptions(t)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Beam rejected a DoFn: %v", r)
		}
	}()
	_, s := beam.NewPipelineWithRoot()
	shards := Embed(s, beam.Create(s, WindowShard{Index: 0, SeqLen: 4, Tokens: []int32{1, 2, 3, 4}}), opts)
	hessians := AccumulateHessian(s, Calibrate(s, 0, shards, opts))
	solved := SolveRowQPs(s, SelectMask(s, LoadBlock(s, 0, opts), hessians, opts), hessians, opts)
	written := WriteBlock(s, 0, solved, opts)
	grouped := beam.GroupByKey(s, beam.ParDo(s, keyByBlock, solved))
	beam.ParDo(s, &writeCompressedBlockFn{writeBlockFn{Opts: opts}}, grouped, beam.SideInput{Input: hessians})
	next := Propagate(s, 0, shards, written, opts)
	Write(s, MarkDone(s, 0, written, next, opts), t.TempDir(), opts)
}
