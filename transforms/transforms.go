// Package transforms holds optima's pruning stages as typed Apache Beam
// composites, one per stage of DESIGN.md §2:
//
//	Embed → per block: LoadBlock → Calibrate → AccumulateHessian →
//	SelectMask → SolveRowQPs → Write (WriteBlock, Propagate, MarkDone) →
//	… → Write (the model directory)
//
// Each DoFn is a thin wrapper around a step function of stages/prune, so the
// Beam pipeline and prune.Sequential compute the same thing. Hidden states
// stay in files of the run's work directory; elements carry references
// (Shard), partial Hessians (KV<group, hessian.Hessian>) and weight row
// batches (RowBatch), the latter two with raw little-endian coders.
package transforms

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families" // registers every family
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/prune"
)

// Options configure every transform of a run. They are plain JSON values so
// that Beam can serialise the DoFns that hold them.
type Options struct {
	// Config is the run's configuration.
	Config prune.Config
	// WorkDir is the run's work directory (prune.Work.Dir).
	WorkDir string
	// Threads bounds the CPU backend's goroutines per DoFn (0: GOMAXPROCS).
	Threads int
}

func (o Options) work() prune.Work { return prune.Work{Dir: o.WorkDir} }

func init() {
	beam.RegisterCoder(reflect.TypeOf(RowBatch{}), encodeRowBatch, decodeRowBatch)
	beam.RegisterCoder(reflect.TypeOf(hessian.Hessian{}), encodeHessian, decodeHessian)
	register.DoFn2x1[WindowShard, func(Shard), error](&embedFn{})
	register.DoFn2x1[[]byte, func(RowBatch), error](&loadBlockFn{})
	register.DoFn3x1[context.Context, Shard, func(string, hessian.Hessian), error](&calibrateFn{})
	register.Combiner3[hessian.Hessian, hessian.Hessian, hessian.Hessian](&hessianCombineFn{})
	register.DoFn3x2[context.Context, RowBatch, func(string) func(*hessian.Hessian) bool, RowBatch, error](&selectMaskFn{})
	register.DoFn3x2[context.Context, RowBatch, func(string) func(*hessian.Hessian) bool, RowBatch, error](&solveRowsFn{})
	register.DoFn4x1[context.Context, int, func(*RowBatch) bool, func(prune.BlockDone), error](&writeBlockFn{})
	register.DoFn5x1[context.Context, int, func(*RowBatch) bool, func(string) func(*hessian.Hessian) bool, func(prune.BlockDone), error](&writeCompressedBlockFn{})
	register.DoFn4x1[context.Context, Shard, func(*prune.BlockDone) bool, func(Shard), error](&propagateFn{})
	register.DoFn4x1[context.Context, prune.BlockDone, func(*Shard) bool, func(prune.BlockDone), error](&markDoneFn{})
	register.DoFn4x1[context.Context, []byte, func(*prune.BlockDone) bool, func(string), error](&writeModelFn{})
	register.Function1x2[RowBatch, int, RowBatch](keyByBlock)
	register.Emitter1[Shard]()
	register.Emitter1[RowBatch]()
	register.Emitter1[prune.BlockDone]()
	register.Emitter1[string]()
	register.Emitter2[string, hessian.Hessian]()
	register.Emitter2[int, RowBatch]()
	register.Iter1[RowBatch]()
	register.Iter1[Shard]()
	register.Iter1[prune.BlockDone]()
	register.Iter1[hessian.Hessian]()
}

// handles are what a DoFn opens in Setup: the model source, its family and a
// compute backend.
type handles struct {
	src model.Source
	fam model.Family
	be  kernels.Backend
}

func (h *handles) open(path string, threads int) error {
	if h.src != nil {
		return nil
	}
	src, err := loader.Open(path)
	if err != nil {
		return err
	}
	fam, err := model.New(src.Config())
	if err != nil {
		src.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	h.src, h.fam = src, fam
	if h.be == nil {
		h.be = cpu.New(threads)
	}
	return nil
}

// close closes the model source and drops the family (and what it caches,
// such as RoPE tables); a later open reopens them. The CPU backend holds no
// data and is kept.
func (h *handles) close() {
	if h.src != nil {
		h.src.Close()
		h.src, h.fam = nil, nil
	}
}

// Lifetimes. Beam's Go SDK harness keeps every bundle processor it built,
// with its DoFn instances, for reuse until the worker ends, and Teardown
// runs only then; one pipeline holds a set of DoFns per block, so whatever
// a per-block DoFn keeps between bundles stays in memory for the rest of
// the run (with the Prism runner, in the launching process). The DoFns that
// open the model or load weights therefore release them in FinishBundle:
// Setup opens the model (so a bad path fails before any element), each
// ProcessElement reopens it if a previous bundle closed it, and FinishBundle
// closes it and drops the loaded weights. Reopening costs parsing the model
// header once per bundle, far less than the block's forward pass. Beam
// requires FinishBundle to take ProcessElement's side inputs and emitters;
// it reads and emits nothing. The harness's emitters also keep the last
// element each emitted, which no DoFn can release: for Calibrate the last
// group's Hessian, for LoadBlock its last row batch.

// ---------------------------------------------------------------- Embed

// Embed turns calibration token windows into the hidden states entering
// block 0. It takes PCollection<WindowShard> and returns PCollection<Shard>
// with Block 0, one per sample shard, whose files lie in the work directory.
func Embed(s beam.Scope, windows beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope("optima.Embed")
	return beam.ParDo(s, &embedFn{Opts: opts}, windows)
}

type embedFn struct {
	Opts Options
	h    handles
}

func (f *embedFn) Setup() error { return f.h.open(f.Opts.Config.Model, f.Opts.Threads) }
func (f *embedFn) FinishBundle(func(Shard)) error {
	f.h.close()
	return nil
}
func (f *embedFn) Teardown() { f.h.close() }
func (f *embedFn) ProcessElement(ws WindowShard, emit func(Shard)) error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	w, err := prune.LoadWeights(f.h.src, f.h.fam.EmbedTensors())
	if err != nil {
		return err
	}
	nseq := len(ws.Tokens) / ws.SeqLen
	wins := make([][]int32, nseq)
	for i := range wins {
		wins[i] = ws.Tokens[i*ws.SeqLen : (i+1)*ws.SeqLen]
	}
	x, err := prune.EmbedShard(f.h.fam, w, wins)
	if err != nil {
		return err
	}
	hidden := f.h.fam.Config().HiddenSize
	sh := Shard{Block: 0, Index: ws.Index, Path: f.Opts.work().HiddenPath(0, ws.Index), NSeq: nseq, SeqLen: ws.SeqLen, Hidden: hidden}
	if sh.SHA256, err = prune.WriteHiddenSum(sh.Path, x, nseq, ws.SeqLen, hidden); err != nil {
		return err
	}
	emit(sh)
	return nil
}

// ---------------------------------------------------------------- LoadBlock

// LoadBlock reads block's dense weights and emits the rows of every prunable
// linear as RowBatch elements (row batches sized by the configuration). It
// returns PCollection<RowBatch>.
func LoadBlock(s beam.Scope, block int, opts Options) beam.PCollection {
	s = s.Scope(fmt.Sprintf("optima.LoadBlock[%d]", block))
	return beam.ParDo(s, &loadBlockFn{Opts: opts, Block: block}, beam.Impulse(s))
}

type loadBlockFn struct {
	Opts  Options
	Block int
	h     handles
}

func (f *loadBlockFn) Setup() error { return f.h.open(f.Opts.Config.Model, f.Opts.Threads) }
func (f *loadBlockFn) FinishBundle(func(RowBatch)) error {
	f.h.close()
	return nil
}
func (f *loadBlockFn) Teardown() { f.h.close() }
func (f *loadBlockFn) ProcessElement(_ []byte, emit func(RowBatch)) error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	cfg := &f.Opts.Config
	for _, l := range f.h.fam.Linears(f.Block) {
		if !cfg.Prunable(l) {
			continue
		}
		t, err := f.h.src.Load(l.Weight())
		if err != nil {
			return err
		}
		if len(t.Shape) != 2 || t.Shape[0] != l.Out || t.Shape[1] != l.In {
			return fmt.Errorf("%s: shape %v, want [%d %d]", l.Weight(), t.Shape, l.Out, l.In)
		}
		// Each batch gets its own copy of its rows: Beam's emitter keeps
		// the last emitted element for the rest of the run (see Lifetimes
		// above handles), and a sub-slice would keep the whole tensor.
		for _, r := range cfg.RowBatches(l.Out, l.In) {
			emit(RowBatch{Block: f.Block, Linear: l.Name, Group: l.Group, Start: r[0], Rows: r[1] - r[0], In: l.In, Out: l.Out,
				W: slices.Clone(t.Data[r[0]*l.In : r[1]*l.In])})
		}
	}
	return nil
}

// ---------------------------------------------------------------- Calibrate

// Calibrate runs block's dense weights over each sample shard of hidden
// states (PCollection<Shard>) and emits each input group's partial Hessian
// of that shard: PCollection<KV<string, hessian.Hessian>> keyed by group.
func Calibrate(s beam.Scope, block int, shards beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope(fmt.Sprintf("optima.Calibrate[%d]", block))
	return beam.ParDo(s, &calibrateFn{Opts: opts, Block: block}, shards)
}

type calibrateFn struct {
	Opts  Options
	Block int
	h     handles
	gram  kernels.Backend // h.be, with the Gram products on the GPU for --device cuda, the large GEMMs for --forward-device cuda
	dense model.Weights
}

func (f *calibrateFn) Setup() error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	be, err := prune.ForwardBackend(f.h.be, f.Opts.Config.Solve.Device, f.Opts.Config.ForwardDevice)
	if err != nil {
		return fmt.Errorf("calibrate block %d: %w", f.Block, err)
	}
	f.gram = be
	return nil
}

// FinishBundle drops the block's dense weights and closes the model (see
// Lifetimes above handles).
func (f *calibrateFn) FinishBundle(func(string, hessian.Hessian)) error {
	f.dense = nil
	f.h.close()
	return nil
}
func (f *calibrateFn) Teardown() { f.FinishBundle(nil) }
func (f *calibrateFn) ProcessElement(ctx context.Context, sh Shard, emit func(string, hessian.Hessian)) error {
	if sh.Block != f.Block {
		return fmt.Errorf("calibrate block %d: got a shard entering block %d", f.Block, sh.Block)
	}
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	if f.dense == nil {
		w, err := prune.LoadWeights(f.h.src, f.h.fam.BlockTensors(f.Block))
		if err != nil {
			return err
		}
		f.dense = w
	}
	x, nseq, seqlen, _, err := prune.ReadHidden(sh.Path)
	if err != nil {
		return err
	}
	start := time.Now()
	hs, err := prune.CalibrateShard(f.gram, f.h.fam, f.Block, f.dense, x, nseq, seqlen)
	if err != nil {
		return err
	}
	groups := make([]string, 0, len(hs))
	for g := range hs {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		emit(g, *hs[g])
	}
	log.Infof(ctx, "calibrated block %d shard %d (%d tokens) in %.1fs", f.Block, sh.Index, nseq*seqlen, time.Since(start).Seconds())
	return nil
}

// ---------------------------------------------------------------- AccumulateHessian

// AccumulateHessian sums partial Hessians per input group with a Beam
// combine: PCollection<KV<string, hessian.Hessian>> in and out, one element
// per group.
func AccumulateHessian(s beam.Scope, partials beam.PCollection) beam.PCollection {
	s = s.Scope("optima.AccumulateHessian")
	return beam.CombinePerKey(s, &hessianCombineFn{}, partials)
}

type hessianCombineFn struct{}

func (hessianCombineFn) CreateAccumulator() hessian.Hessian { return hessian.Hessian{} }
func (hessianCombineFn) AddInput(a, x hessian.Hessian) (hessian.Hessian, error) {
	err := a.Merge(&x)
	return a, err
}
func (hessianCombineFn) MergeAccumulators(a, b hessian.Hessian) (hessian.Hessian, error) {
	err := a.Merge(&b)
	return a, err
}
func (hessianCombineFn) ExtractOutput(a hessian.Hessian) hessian.Hessian { return a }

func lookupHessian(group string, side func(string) func(*hessian.Hessian) bool) (*hessian.Hessian, error) {
	var h hessian.Hessian
	if !side(group)(&h) {
		return nil, fmt.Errorf("no Hessian for input group %s", group)
	}
	return &h, nil
}

// ---------------------------------------------------------------- SelectMask

// SelectMask picks each row batch's pruned set with the configured selector
// (PCollection<RowBatch> in and out), reading the input group's Hessian
// (‖X_j‖₂) from the side input hessians (KV<string, hessian.Hessian>).
func SelectMask(s beam.Scope, batches, hessians beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope("optima.SelectMask")
	return beam.ParDo(s, &selectMaskFn{Opts: opts}, batches, beam.SideInput{Input: hessians})
}

type selectMaskFn struct {
	Opts Options
	sel  mask.Selector
	pat  mask.Pattern
	be   kernels.Backend
}

func (f *selectMaskFn) Setup() error {
	var err error
	if f.sel, err = mask.New(f.Opts.Config.Method, f.Opts.Config.MethodParams); err != nil {
		return err
	}
	if _, ok := f.sel.(mask.LayerSelector); ok {
		t := f.Opts.Threads
		if t <= 0 {
			t = runtime.GOMAXPROCS(0)
		}
		f.be = cpu.New(t)
	}
	f.pat, err = f.Opts.Config.MaskPattern()
	return err
}

// ProcessElement picks the batch's mask. A layer selector (sparsegpt,
// thanos, admm) gets the whole linear in one batch (Config.RowBatches); with
// --update own its own update is applied here and SolveRowQPs passes the
// batch on unchanged.
func (f *selectMaskFn) ProcessElement(ctx context.Context, b RowBatch, side func(string) func(*hessian.Hessian) bool) (RowBatch, error) {
	start := time.Now()
	h, err := lookupHessian(b.Group, side)
	if err != nil {
		return b, err
	}
	if ls, ok := f.sel.(mask.LayerSelector); ok {
		if b.Start != 0 || b.Rows != b.Out {
			return b, fmt.Errorf("%s: layer selector %s got rows [%d, %d) of %d; it needs the whole layer", b.Linear, f.sel.Name(), b.Start, b.Start+b.Rows, b.Out)
		}
		m, own, lambda, err := prune.SelectLayer(f.be, ls, f.pat, b.Linear, b.W, b.Rows, b.In, h)
		if err != nil {
			return b, err
		}
		b.Pruned = m.Pruned
		if f.Opts.Config.Update == prune.UpdateOwn {
			w := slices.Clone(b.W)
			b.Result = prune.ApplyOwn(f.be, w, own, m, h, lambda)
			b.W = w
		} else {
			b.Result.Stats.Damping = lambda
		}
		b.Seconds += time.Since(start).Seconds()
		return b, nil
	}
	m, err := prune.SelectMaskNorms(f.sel, f.pat, b.Linear, b.Start, b.W, b.Rows, b.In, f.Opts.Config.MaskNorms(h))
	if err != nil {
		return b, err
	}
	b.Pruned = m.Pruned
	b.Seconds += time.Since(start).Seconds()
	return b, nil
}

// ---------------------------------------------------------------- SolveRowQPs

// SolveRowQPs applies each row batch's mask and, for --update optima,
// re-fits its rows exactly (stages/solve) against the group's Hessian from
// the side input. PCollection<RowBatch> in and out, Result filled.
func SolveRowQPs(s beam.Scope, masked, hessians beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope("optima.SolveRowQPs")
	return beam.ParDo(s, &solveRowsFn{Opts: opts}, masked, beam.SideInput{Input: hessians})
}

type solveRowsFn struct {
	Opts Options
	be   kernels.Backend
	rows beam.Counter
	fb   beam.Counter
}

func (f *solveRowsFn) Setup() error {
	t := f.Opts.Threads
	if t <= 0 {
		t = runtime.GOMAXPROCS(0)
	}
	f.be = cpu.New(t)
	f.rows = beam.NewCounter("optima", "rows_solved")
	f.fb = beam.NewCounter("optima", "fallback_rows")
	return nil
}

func (f *solveRowsFn) ProcessElement(ctx context.Context, b RowBatch, side func(string) func(*hessian.Hessian) bool) (RowBatch, error) {
	if b.Pruned == nil {
		return b, fmt.Errorf("%s: row batch reached SolveRowQPs without a mask", b.Linear)
	}
	if f.Opts.Config.Update == prune.UpdateOwn {
		return b, nil // the selector's own update, applied in SelectMask
	}
	selDamping := b.Result.Stats.Damping
	start := time.Now()
	h, err := lookupHessian(b.Group, side)
	if err != nil {
		return b, err
	}
	// Beam may hand the same element to several consumers: solve a copy,
	// never the input's weights.
	b.W = slices.Clone(b.W)
	m := &mask.Mask{Rows: b.Rows, Cols: b.In, Pruned: b.Pruned}
	res, err := prune.SolveRows(f.be, f.Opts.Config.Update, f.Opts.Config.Solve, b.Linear, b.W, m, h)
	if err != nil {
		return b, err
	}
	if f.Opts.Config.Update == prune.UpdateNone && selDamping > 0 {
		res.Stats.Damping = selDamping // as prune.SelectAndUpdate reports it
	}
	b.Result = res
	b.Seconds += time.Since(start).Seconds()
	f.rows.Inc(ctx, int64(b.Rows))
	f.fb.Inc(ctx, int64(res.Stats.FallbackRows))
	return b, nil
}

// ---------------------------------------------------------------- Write

func keyByBlock(b RowBatch) (int, RowBatch) { return b.Block, b }

// WriteBlock gathers the solved row batches of a block (PCollection<RowBatch>)
// into its pruned linear tensors, writes them atomically to the work
// directory and emits one prune.BlockDone (without Next) carrying the
// per-linear reports.
//
// With compression (Config.Compress), WriteBlock is also the per-linear
// compression step: it needs the merged Hessians (PCollection<KV<string,
// hessian.Hessian>>, passed as hessians) as a side input, and runs
// prune.CompressLinear on each linear once all its rows are gathered, as
// prune.PruneBlockLinears does, writing adapters kept separate into the
// block file. Without compression hessians is ignored and may be omitted.
func WriteBlock(s beam.Scope, block int, solved beam.PCollection, opts Options, hessians ...beam.PCollection) beam.PCollection {
	s = s.Scope(fmt.Sprintf("optima.WriteBlock[%d]", block))
	grouped := beam.GroupByKey(s, beam.ParDo(s, keyByBlock, solved))
	if opts.Config.CompressEnabled() {
		if len(hessians) != 1 {
			panic(fmt.Sprintf("transforms.WriteBlock[%d]: compression needs the Hessians (one PCollection), got %d", block, len(hessians)))
		}
		return beam.ParDo(s, &writeCompressedBlockFn{writeBlockFn{Opts: opts, Block: block}}, grouped, beam.SideInput{Input: hessians[0]})
	}
	return beam.ParDo(s, &writeBlockFn{Opts: opts, Block: block}, grouped)
}

type writeBlockFn struct {
	Opts  Options
	Block int
	h     handles
}

func (f *writeBlockFn) Setup() error { return f.h.open(f.Opts.Config.Model, f.Opts.Threads) }
func (f *writeBlockFn) FinishBundle(func(prune.BlockDone)) error {
	f.h.close()
	return nil
}
func (f *writeBlockFn) Teardown() { f.h.close() }
func (f *writeBlockFn) ProcessElement(ctx context.Context, block int, batches func(*RowBatch) bool, emit func(prune.BlockDone)) error {
	return f.write(ctx, block, batches, nil, emit)
}

// write assembles and writes the block; side, when not nil, looks up the
// Hessians for compression.
func (f *writeBlockFn) write(ctx context.Context, block int, batches func(*RowBatch) bool, side func(string) func(*hessian.Hessian) bool, emit func(prune.BlockDone)) error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	byLinear := map[string][]RowBatch{}
	var b RowBatch
	for batches(&b) {
		byLinear[b.Linear] = append(byLinear[b.Linear], b)
		b = RowBatch{}
	}
	cfg := &f.Opts.Config
	var tensors []*model.Tensor
	done := prune.BlockDone{Block: block, Weights: f.Opts.work().BlockPath(block)}
	for _, l := range f.h.fam.Linears(block) {
		parts := byLinear[l.Name]
		if !cfg.Prunable(l) {
			continue
		}
		t := &model.Tensor{Name: l.Weight(), Shape: []int{l.Out, l.In}, Data: make([]float32, l.Out*l.In)}
		var pruned []bool
		if side != nil {
			pruned = make([]bool, l.Out*l.In)
		}
		acc := prune.NewLinearAccumulator(l)
		rows := 0
		for _, p := range parts {
			copy(t.Data[p.Start*l.In:], p.W)
			if pruned != nil {
				copy(pruned[p.Start*l.In:], p.Pruned)
			}
			acc.Add(p.Result, p.Seconds)
			rows += p.Rows
		}
		if rows != l.Out {
			return fmt.Errorf("write block %d: %s has %d of %d rows", block, l.Name, rows, l.Out)
		}
		rep := acc.Report()
		tensors = append(tensors, t)
		if side != nil {
			h, err := lookupHessian(l.Group, side)
			if err != nil {
				return err
			}
			dense, err := f.h.src.Load(l.Weight())
			if err != nil {
				return err
			}
			adapter, err := prune.CompressLinear(cfg, l, dense.Data, t.Data, pruned, h, &rep)
			if err != nil {
				return err
			}
			tensors = append(tensors, adapter...)
		}
		done.Linears = append(done.Linears, rep)
	}
	sum, err := prune.WriteTensorsSum(done.Weights, tensors)
	if err != nil {
		return err
	}
	done.WeightsSHA256 = sum
	log.Infof(ctx, "wrote pruned block %d", block)
	emit(done)
	return nil
}

// writeCompressedBlockFn is writeBlockFn with the Hessians as a side input,
// for runs with compression.
type writeCompressedBlockFn struct {
	writeBlockFn
}

// FinishBundle is writeBlockFn's, with the side input Beam requires.
func (f *writeCompressedBlockFn) FinishBundle(_ func(string) func(*hessian.Hessian) bool, emit func(prune.BlockDone)) error {
	return f.writeBlockFn.FinishBundle(emit)
}

func (f *writeCompressedBlockFn) ProcessElement(ctx context.Context, block int, batches func(*RowBatch) bool, side func(string) func(*hessian.Hessian) bool, emit func(prune.BlockDone)) error {
	return f.write(ctx, block, batches, side, emit)
}

// Propagate runs the pruned block (its BlockDone as a singleton side input)
// over each sample shard entering it and emits the shards entering the next
// block: PCollection<Shard> in and out. This is how each block is calibrated
// on the outputs of the already pruned block before it.
func Propagate(s beam.Scope, block int, shards, done beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope(fmt.Sprintf("optima.Propagate[%d]", block))
	return beam.ParDo(s, &propagateFn{Opts: opts, Block: block}, shards, beam.SideInput{Input: done})
}

type propagateFn struct {
	Opts  Options
	Block int
	h     handles
	fwd   kernels.Backend // h.be, with the large GEMMs on the GPU for --forward-device cuda
	w     model.Weights
}

func (f *propagateFn) Setup() error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	be, err := prune.ForwardBackend(f.h.be, "", f.Opts.Config.ForwardDevice)
	if err != nil {
		return fmt.Errorf("propagate block %d: %w", f.Block, err)
	}
	f.fwd = be
	return nil
}

// FinishBundle drops the pruned block's weights and closes the model (see
// Lifetimes above handles).
func (f *propagateFn) FinishBundle(func(*prune.BlockDone) bool, func(Shard)) error {
	f.w = nil
	f.h.close()
	return nil
}
func (f *propagateFn) Teardown() { f.FinishBundle(nil, nil) }
func (f *propagateFn) ProcessElement(ctx context.Context, sh Shard, done func(*prune.BlockDone) bool, emit func(Shard)) error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	if f.w == nil {
		var d prune.BlockDone
		if !done(&d) {
			return fmt.Errorf("propagate block %d: block not written", f.Block)
		}
		w, err := prune.PrunedWeights(f.h.src, f.h.fam, f.Block, d.Weights)
		if err != nil {
			return err
		}
		f.w = w
	}
	next, err := prune.PropagateShard(f.fwd, f.h.fam, f.Block, f.w, sh, f.Opts.work())
	if err != nil {
		return err
	}
	emit(next)
	return nil
}

// MarkDone records a finished block in the work directory once the shards
// entering the next block (side input, PCollection<Shard>, empty after the
// last block) exist: it writes the done marker, removes the block's input
// shards, and passes the completed prune.BlockDone on.
func MarkDone(s beam.Scope, block int, done, next beam.PCollection, opts Options) beam.PCollection {
	s = s.Scope(fmt.Sprintf("optima.MarkDone[%d]", block))
	return beam.ParDo(s, &markDoneFn{Opts: opts}, done, beam.SideInput{Input: next})
}

type markDoneFn struct {
	Opts Options
}

func (f *markDoneFn) ProcessElement(ctx context.Context, d prune.BlockDone, next func(*Shard) bool, emit func(prune.BlockDone)) error {
	var sh Shard
	for next(&sh) {
		d.Next = append(d.Next, sh)
	}
	sort.Slice(d.Next, func(i, j int) bool { return d.Next[i].Index < d.Next[j].Index })
	if err := f.Opts.work().MarkDone(d); err != nil {
		return err
	}
	log.Infof(ctx, "block %d done", d.Block)
	emit(d)
	return nil
}

// Write assembles the pruned model once every block is done (dones,
// PCollection<prune.BlockDone>, as a side input): a Hugging Face directory
// at out with config.json, safetensors, tokenizer files and report.json,
// written to a temporary sibling and renamed into place. It returns
// PCollection<string> holding out.
func Write(s beam.Scope, dones beam.PCollection, out string, opts Options) beam.PCollection {
	s = s.Scope("optima.Write")
	return beam.ParDo(s, &writeModelFn{Opts: opts, Out: out}, beam.Impulse(s), beam.SideInput{Input: dones})
}

type writeModelFn struct {
	Opts Options
	Out  string
	h    handles
}

func (f *writeModelFn) Setup() error { return f.h.open(f.Opts.Config.Model, f.Opts.Threads) }
func (f *writeModelFn) FinishBundle(func(*prune.BlockDone) bool, func(string)) error {
	f.h.close()
	return nil
}
func (f *writeModelFn) Teardown() { f.h.close() }
func (f *writeModelFn) ProcessElement(ctx context.Context, _ []byte, dones func(*prune.BlockDone) bool, emit func(string)) error {
	if err := f.h.open(f.Opts.Config.Model, f.Opts.Threads); err != nil {
		return err
	}
	var all []prune.BlockDone
	var d prune.BlockDone
	for dones(&d) {
		all = append(all, d)
		d = prune.BlockDone{}
	}
	if err := prune.WriteModel(f.h.src, f.h.fam, &f.Opts.Config, all, f.Out); err != nil {
		return err
	}
	if ok, err := fileio.Exists(ctx, fileio.Join(f.Out, "config.json")); err != nil || !ok {
		return fmt.Errorf("write %s: no config.json after writing the model (%v)", f.Out, err)
	}
	emit(f.Out)
	return nil
}
