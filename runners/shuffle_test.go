package runners_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/transforms"
)

func init() {
	register.DoFn2x1[context.Context, transforms.RowBatch, error](&measureRowsFn{})
	register.DoFn3x1[context.Context, string, hessian.Hessian, error](&measureHessianFn{})
	register.DoFn2x1[context.Context, transforms.Shard, error](&measureShardFn{})
}

// The measuring DoFns encode each element with the coder Beam uses for its
// PCollection and count the bytes (and elements) under Name.
type measureRowsFn struct {
	Name string
	enc  beam.ElementEncoder
}

func (f *measureRowsFn) Setup() {
	f.enc = beam.NewElementEncoder(reflect.TypeOf(transforms.RowBatch{}))
}
func (f *measureRowsFn) ProcessElement(ctx context.Context, b transforms.RowBatch) error {
	var buf bytes.Buffer
	if err := f.enc.Encode(b, &buf); err != nil {
		return err
	}
	beam.NewCounter("shuffle", f.Name+".bytes").Inc(ctx, int64(buf.Len()))
	beam.NewCounter("shuffle", f.Name+".elements").Inc(ctx, 1)
	beam.NewCounter("shuffle", f.Name+".float32s").Inc(ctx, int64(len(b.W)))
	return nil
}

type measureHessianFn struct {
	Name     string
	key, val beam.ElementEncoder
}

func (f *measureHessianFn) Setup() {
	f.key = beam.NewElementEncoder(reflect.TypeOf(""))
	f.val = beam.NewElementEncoder(reflect.TypeOf(hessian.Hessian{}))
}
func (f *measureHessianFn) ProcessElement(ctx context.Context, k string, h hessian.Hessian) error {
	var buf bytes.Buffer
	if err := f.key.Encode(k, &buf); err != nil {
		return err
	}
	if err := f.val.Encode(h, &buf); err != nil {
		return err
	}
	beam.NewCounter("shuffle", f.Name+".bytes").Inc(ctx, int64(buf.Len()))
	beam.NewCounter("shuffle", f.Name+".elements").Inc(ctx, 1)
	// Symmetric: the coder packs the upper triangle, In(In+1)/2 values.
	beam.NewCounter("shuffle", f.Name+".float64s").Inc(ctx, int64(h.In*(h.In+1)/2))
	return nil
}

type measureShardFn struct {
	Name string
	enc  beam.ElementEncoder
}

func (f *measureShardFn) Setup() { f.enc = beam.NewElementEncoder(reflect.TypeOf(transforms.Shard{})) }
func (f *measureShardFn) ProcessElement(ctx context.Context, s transforms.Shard) error {
	var buf bytes.Buffer
	if err := f.enc.Encode(s, &buf); err != nil {
		return err
	}
	beam.NewCounter("shuffle", f.Name+".bytes").Inc(ctx, int64(buf.Len()))
	beam.NewCounter("shuffle", f.Name+".elements").Inc(ctx, 1)
	return nil
}

// TestShuffleBytesPerBlock measures the encoded bytes of every element that
// crosses a stage boundary of block 0 (the same composites as
// pipeline.Section) on a tiny model, and checks that tensors travel as raw
// little-endian payloads: a weight row batch costs 4 bytes per float32 plus
// a bit per mask entry plus a small header, a Hessian 8 bytes per float64 of
// its upper triangle plus a small header, a shard only its reference (hidden
// states stay in files).
//
// Measured (tiny Llama: hidden 64, intermediate 128, 6 windows × 24 tokens
// in 2 shards; go test ./runners -run ShuffleBytes -v):
//
//	1-shards             2 elements     ~195 bytes (references)
//	2-hessian-partials   8 elements  232588 bytes (packed float64, CombinePerKey input)
//	3-hessians           4 elements  116294 bytes (side input of mask and solve)
//	4-rows-loaded        7 elements  149911 bytes (raw float32; 147456 of payload)
//	5-rows-masked        7 elements  154582 bytes (+ 1 mask bit per weight)
//	6-rows-solved        7 elements  155055 bytes (+ solve statistics; WriteBlock's GBK)
//	total                            808624 bytes per block
func TestShuffleBytesPerBlock(t *testing.T) {
	dir := t.TempDir()
	modelDir, corpus := fixture(t, dir, 2)
	cfg := config(modelDir, corpus, filepath.Join(dir, "out"), "")
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := transforms.Options{Config: cfg.Config, WorkDir: plan.Work.Dir, Threads: cfg.Threads}
	p, s := beam.NewPipelineWithRoot()
	shards := transforms.Embed(s, beam.CreateList(s, plan.Windows), opts)
	beam.ParDo0(s, &measureShardFn{Name: "1-shards"}, shards)
	batches := transforms.LoadBlock(s, 0, opts)
	beam.ParDo0(s, &measureRowsFn{Name: "4-rows-loaded"}, batches)
	partials := transforms.Calibrate(s, 0, shards, opts)
	beam.ParDo0(s, &measureHessianFn{Name: "2-hessian-partials"}, partials)
	hessians := transforms.AccumulateHessian(s, partials)
	beam.ParDo0(s, &measureHessianFn{Name: "3-hessians"}, hessians)
	masked := transforms.SelectMask(s, batches, hessians, opts)
	beam.ParDo0(s, &measureRowsFn{Name: "5-rows-masked"}, masked)
	solved := transforms.SolveRowQPs(s, masked, hessians, opts)
	beam.ParDo0(s, &measureRowsFn{Name: "6-rows-solved"}, solved)
	res, err := runners.Execute(context.Background(), runners.Config{}, p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range res.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace == "shuffle" {
			got[c.Key.Name] += c.Result()
		}
	}
	var names []string
	for n := range got {
		if strings.HasSuffix(n, ".bytes") {
			names = append(names, strings.TrimSuffix(n, ".bytes"))
		}
	}
	sort.Strings(names)
	var total int64
	var report strings.Builder
	for _, n := range names {
		b, e := got[n+".bytes"], got[n+".elements"]
		total += b
		fmt.Fprintf(&report, "\n  %-20s %4d elements %10d bytes (%.1f KiB)", n, e, b, float64(b)/1024)
		const header = 1024 // JSON meta of a row batch or a Hessian's header, per element
		switch {
		case strings.Contains(n, "rows"):
			floats := got[n+".float32s"]
			raw := 4 * floats
			if n != "4-rows-loaded" {
				raw += (floats + 7*e) / 8 // mask bits
			}
			if b < 4*floats || b > raw+header*e {
				t.Errorf("%s: %d bytes for %d float32s in %d elements; want raw payloads (%d..%d)", n, b, floats, e, 4*floats, raw+header*e)
			}
		case strings.Contains(n, "hessian"):
			floats := got[n+".float64s"]
			if b < 8*floats || b > 8*floats+header*e {
				t.Errorf("%s: %d bytes for %d float64s in %d elements; want raw payloads", n, b, floats, e)
			}
		case n == "1-shards":
			if b > 512*e {
				t.Errorf("shards: %d bytes in %d elements; want references, not hidden states", b, e)
			}
		}
	}
	if len(names) != 6 {
		t.Fatalf("measured %v; want 6 PCollections (counters missing?)", names)
	}
	t.Logf("encoded bytes per PCollection of block 0:%s\n  total %d bytes (%.1f KiB)", report.String(), total, float64(total)/1024)
}
