package prune

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/hessian"
	"github.com/optima-llm/optima/stages/mask"
	"github.com/optima-llm/optima/stages/report"
)

// EmbedShard embeds the token windows of one sample shard into hidden
// states [len(windows)·seqlen, hidden].
func EmbedShard(fam model.Family, w model.Weights, windows [][]int32) ([]float32, error) {
	if len(windows) == 0 {
		return nil, fmt.Errorf("embed: empty shard")
	}
	seqlen := len(windows[0])
	ids := make([]int32, 0, len(windows)*seqlen)
	for _, win := range windows {
		if len(win) != seqlen {
			return nil, fmt.Errorf("embed: windows of unequal length %d and %d", seqlen, len(win))
		}
		ids = append(ids, win...)
	}
	x := make([]float32, len(ids)*fam.Config().HiddenSize)
	if err := fam.Embed(w, ids, x); err != nil {
		return nil, err
	}
	return x, nil
}

// PruneBlockLinears masks and solves every prunable linear of block b given
// the block's dense weights and its merged Hessians, in row batches as cfg
// says. It returns the pruned linear tensors and their reports.
func PruneBlockLinears(be kernels.Backend, cfg *Config, fam model.Family, b int, dense model.Weights, hs map[string]*hessian.Hessian) ([]*model.Tensor, []report.LinearReport, error) {
	sel, err := mask.New(cfg.Method, cfg.MethodParams)
	if err != nil {
		return nil, nil, err
	}
	pat, err := cfg.MaskPattern()
	if err != nil {
		return nil, nil, err
	}
	var out []*model.Tensor
	var reps []report.LinearReport
	for _, l := range fam.Linears(b) {
		if !cfg.Prunable(l) {
			continue
		}
		src, ok := dense[l.Weight()]
		if !ok {
			return nil, nil, fmt.Errorf("block %d: tensor %s missing", b, l.Weight())
		}
		h := hs[l.Group]
		if h == nil {
			return nil, nil, fmt.Errorf("block %d: no Hessian for input group %s", b, l.Group)
		}
		if err := pat.Check(l.In); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", l.Name, err)
		}
		t := &model.Tensor{Name: l.Weight(), Shape: []int{l.Out, l.In}, Data: make([]float32, l.Out*l.In)}
		copy(t.Data, src.Data)
		acc := NewLinearAccumulator(l)
		var pruned []bool
		if cfg.CompressEnabled() {
			pruned = make([]bool, l.Out*l.In)
		}
		for _, r := range cfg.RowBatches(l.Out, l.In) {
			rows := r[1] - r[0]
			wb := t.Data[r[0]*l.In : r[1]*l.In]
			start := time.Now()
			res, err := SelectAndUpdate(be, cfg, sel, pat, l.Name, r[0], wb, rows, l.In, h)
			if err != nil {
				return nil, nil, err
			}
			if pruned != nil {
				copy(pruned[r[0]*l.In:], res.Mask)
			}
			acc.Add(res, time.Since(start).Seconds())
		}
		rep := acc.Report()
		adapter, err := CompressLinear(cfg, l, src.Data, t.Data, pruned, h, &rep)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, t)
		out = append(out, adapter...)
		reps = append(reps, rep)
	}
	return out, reps, nil
}

// SelectAndUpdate picks the mask of rows [firstRow, firstRow+rows) of a
// linear (w, [rows, in], updated in place) with sel and applies cfg.Update.
// A mask.LayerSelector must get all rows (firstRow 0, see
// Config.RowBatches); with UpdateOwn its own update is kept, with
// UpdateOptima the dense rows are re-fitted exactly on its mask, with
// UpdateNone they are only masked. Stats.Damping is the selector's damping
// for UpdateOwn and UpdateNone, the solve's for UpdateOptima.
func SelectAndUpdate(be kernels.Backend, cfg *Config, sel mask.Selector, pat mask.Pattern, linear string, firstRow int, w []float32, rows, in int, h *hessian.Hessian) (BatchResult, error) {
	ls, layer := sel.(mask.LayerSelector)
	if !layer {
		m, err := SelectMaskNorms(sel, pat, linear, firstRow, w, rows, in, cfg.MaskNorms(h))
		if err != nil {
			return BatchResult{}, err
		}
		res, err := SolveRows(be, cfg.Update, cfg.Solve, linear, w, m, h)
		res.Mask = m.Pruned
		return res, err
	}
	if firstRow != 0 {
		panic(fmt.Sprintf("prune.SelectAndUpdate: %s: layer selector %s given a row batch at row %d", linear, sel.Name(), firstRow))
	}
	m, own, lambda, err := SelectLayer(be, ls, pat, linear, w, rows, in, h)
	if err != nil {
		return BatchResult{}, err
	}
	if cfg.Update == UpdateOwn {
		res := ApplyOwn(be, w, own, m, h, lambda)
		res.Mask = m.Pruned
		return res, nil
	}
	res, err := SolveRows(be, cfg.Update, cfg.Solve, linear, w, m, h)
	res.Mask = m.Pruned
	if cfg.Update == UpdateNone {
		res.Stats.Damping = lambda
	}
	return res, err
}

// LinearAccumulator sums the results of a linear's row batches into its
// report line.
type LinearAccumulator struct {
	rep           report.LinearReport
	pruned, total int
}

// NewLinearAccumulator starts the report of linear l.
func NewLinearAccumulator(l model.Linear) *LinearAccumulator {
	return &LinearAccumulator{rep: report.LinearReport{Name: l.Name, Group: l.Group, Out: l.Out, In: l.In}}
}

// Add records one row batch's result and the seconds it took.
func (a *LinearAccumulator) Add(res BatchResult, seconds float64) {
	st := res.Stats
	a.pruned += res.Pruned
	a.total += st.Rows * a.rep.In
	a.rep.NumBefore += st.ObjBefore
	a.rep.NumAfter += st.ObjAfter
	a.rep.Den += st.Denom
	a.rep.CGIterations = max(a.rep.CGIterations, st.Iterations)
	a.rep.FallbackRows += st.FallbackRows
	a.rep.Damping = max(a.rep.Damping, st.Damping)
	a.rep.Seconds += seconds
}

// Report finishes the report line.
func (a *LinearAccumulator) Report() report.LinearReport {
	r := a.rep
	if a.total > 0 {
		r.Sparsity = float64(a.pruned) / float64(a.total)
	}
	if r.Den > 0 {
		r.ErrBefore = r.NumBefore / r.Den
		r.ErrAfter = r.NumAfter / r.Den
	}
	return r
}

// Sequential prunes every block from start on in plain Go, with the same
// step functions the Beam transforms call: the reference the pipeline is
// tested against, and a debugging aid. shards are the hidden states entering
// block start (each a ShardRef written in work). It returns the done markers
// of the blocks it finished.
func Sequential(be kernels.Backend, cfg *Config, src model.Source, fam model.Family, work Work, start int, shards []ShardRef, log *slog.Logger) ([]BlockDone, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var done []BlockDone
	gbe, err := ForwardBackend(be, cfg.Solve.Device, cfg.ForwardDevice)
	if err != nil {
		return done, err
	}
	for b := start; b < fam.NumBlocks(); b++ {
		dense, err := LoadWeights(src, fam.BlockTensors(b))
		if err != nil {
			return done, err
		}
		hs := map[string]*hessian.Hessian{}
		for _, sh := range shards {
			x, nseq, seqlen, _, err := ReadHidden(sh.Path)
			if err != nil {
				return done, err
			}
			part, err := CalibrateShard(gbe, fam, b, dense, x, nseq, seqlen)
			if err != nil {
				return done, err
			}
			for g, p := range part {
				if hs[g] == nil {
					hs[g] = hessian.New(g, p.In)
				}
				if err := hs[g].Merge(p); err != nil {
					return done, err
				}
			}
		}
		tensors, reps, err := PruneBlockLinears(be, cfg, fam, b, dense, hs)
		if err != nil {
			return done, err
		}
		sum, err := WriteTensorsSum(work.BlockPath(b), tensors)
		if err != nil {
			return done, err
		}
		pw, err := PrunedWeights(src, fam, b, work.BlockPath(b))
		if err != nil {
			return done, err
		}
		var next []ShardRef
		if b+1 < fam.NumBlocks() {
			for _, sh := range shards {
				n, err := PropagateShard(gbe, fam, b, pw, sh, work)
				if err != nil {
					return done, err
				}
				next = append(next, n)
			}
		}
		d := BlockDone{Block: b, Weights: work.BlockPath(b), WeightsSHA256: sum, Linears: reps, Next: next}
		if err := work.MarkDone(d); err != nil {
			return done, err
		}
		log.Info("block pruned", "block", b)
		done = append(done, d)
		shards = next
	}
	return done, nil
}

// PropagateShard runs block b with weights w on shard sh and writes the
// result as the shard entering block b+1.
func PropagateShard(be kernels.Backend, fam model.Family, b int, w model.Weights, sh ShardRef, work Work) (ShardRef, error) {
	x, nseq, seqlen, hidden, err := ReadHidden(sh.Path)
	if err != nil {
		return ShardRef{}, err
	}
	if err := fam.ForwardBlock(be, b, w, x, nseq, seqlen, nil); err != nil {
		return ShardRef{}, fmt.Errorf("propagate block %d: %w", b, err)
	}
	next := ShardRef{Block: b + 1, Index: sh.Index, Path: work.HiddenPath(b+1, sh.Index), NSeq: nseq, SeqLen: seqlen, Hidden: hidden}
	if next.SHA256, err = WriteHiddenSum(next.Path, x, nseq, seqlen, hidden); err != nil {
		return ShardRef{}, err
	}
	return next, nil
}

// RunSequential embeds the calibration windows (one slice of windows per
// sample shard), prunes every block with Sequential and writes the model
// directory out: the whole job without Beam, as the reference for the
// pipeline's tests.
func RunSequential(be kernels.Backend, cfg *Config, src model.Source, fam model.Family, work Work, shards [][][]int32, out string, log *slog.Logger) error {
	emb, err := LoadWeights(src, fam.EmbedTensors())
	if err != nil {
		return err
	}
	var refs []ShardRef
	for i, wins := range shards {
		x, err := EmbedShard(fam, emb, wins)
		if err != nil {
			return err
		}
		ref := ShardRef{Block: 0, Index: i, Path: work.HiddenPath(0, i), NSeq: len(wins), SeqLen: len(wins[0]), Hidden: fam.Config().HiddenSize}
		if ref.SHA256, err = WriteHiddenSum(ref.Path, x, ref.NSeq, ref.SeqLen, ref.Hidden); err != nil {
			return err
		}
		refs = append(refs, ref)
	}
	done, err := Sequential(be, cfg, src, fam, work, 0, refs, log)
	if err != nil {
		return err
	}
	return WriteModel(src, fam, cfg, done, out)
}
