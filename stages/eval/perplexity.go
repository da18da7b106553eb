// Package eval scores language models: WikiText-2 perplexity computed the way
// the pruning papers (SparseGPT, Wanda, OPTIMA) compute it (Perplexity), and
// zero-shot multiple-choice accuracy computed the way lm-evaluation-harness
// v0.4 computes it (LoadTask builds PIQA, ARC-Easy/Challenge, WinoGrande,
// OpenBookQA and MMLU items with the harness's prompts, EncodePair tokenizes
// them as the harness does, LogLikelihoods scores them in batches, Aggregate
// and Summarize form acc, acc_norm and the average).
package eval

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
)

// Loader returns the named tensors (float32, Hugging Face layout). Perplexity
// asks for one group at a time (the embedding, one block, the head) and drops
// each group before asking for the next, so a Loader backed by files bounds
// resident weights to about one block.
type Loader func(names []string) (model.Weights, error)

// WeightsLoader serves tensors from an in-memory map; a missing name is an
// error.
func WeightsLoader(w model.Weights) Loader {
	return func(names []string) (model.Weights, error) {
		out := make(model.Weights, len(names))
		for _, n := range names {
			t, ok := w[n]
			if !ok {
				return nil, fmt.Errorf("eval: missing tensor %s", n)
			}
			out[n] = t
		}
		return out, nil
	}
}

// SourceLoader loads tensors from a checkpoint on each call.
func SourceLoader(src model.Source) Loader {
	return func(names []string) (model.Weights, error) {
		out := make(model.Weights, len(names))
		for _, n := range names {
			t, err := src.Load(n)
			if err != nil {
				return nil, err
			}
			out[n] = t
		}
		return out, nil
	}
}

// Result is a perplexity evaluation.
type Result struct {
	// Perplexity is exp(NLL).
	Perplexity float64
	// NLL is the mean over windows of each window's mean negative
	// log-likelihood (nats per predicted token).
	NLL float64
	// Tokens is the number of stream tokens evaluated, Windows·Seqlen (each
	// window predicts Seqlen-1 of them).
	Tokens int
	// Windows is the number of windows scored and Seqlen their length.
	Windows, Seqlen int
	// WindowNLL is each window's mean negative log-likelihood, in order.
	WindowNLL []float64
}

// hiddenBudget bounds the bytes of hidden states held at once: windows are
// processed in passes of at most this many bytes of [seqlen, hidden] float32
// states (at least one window per pass).
const hiddenBudget = 1 << 30

// callTokens is about how many tokens one ForwardBlock call processes; it
// bounds the block's activation scratch (≈ callTokens·(3·hidden +
// 2·intermediate + 2·q_dim) float32).
const callTokens = 2048

// logitRows is the number of rows whose logits are formed at once
// (logitRows·vocab float32).
const logitRows = 256

// Perplexity scores ids as SparseGPT's and Wanda's eval_ppl_wikitext do: the
// stream is cut into non-overlapping windows of seqlen tokens (the tail that
// does not fill a window is dropped; at most maxWindows windows when
// maxWindows > 0), each window is scored on its own from position 0 with
// nothing prepended, its loss is the mean negative log-likelihood of tokens
// 1..seqlen-1 given the previous ones (Hugging Face's shifted labels), and
// ppl = exp(Σ_i loss_i·seqlen / (nwindows·seqlen)) = exp(mean_i loss_i).
// Log-softmax runs in float64 over the float32 logits, row by row.
//
// Order of work: the windows are processed in passes that hold at most
// about 1 GiB of hidden states (all 140 windows of WikiText-2 at seqlen 2048
// for SmolLM2-135M fit in one pass: 0.67 GB). In each pass the embedding,
// then each block, then the head are loaded once through load, applied to
// every window of the pass (ForwardBlock on groups of about 2048 tokens), and
// released. So resident memory is one pass of hidden states plus one block's
// weights plus the activations of ~2048 tokens plus 256 rows of logits,
// whatever the model size; a multi-pass run loads each block once per pass.
//
// progress, if not nil, is called from the calling goroutine with done and
// total in units of window-steps, total = Windows·(NumBlocks+2) (embedding,
// blocks, head). It returns the first error of load, the family or ctx, and
// an error when seqlen < 2 or the stream holds fewer than seqlen tokens.
func Perplexity(ctx context.Context, be kernels.Backend, fam model.Family, load Loader, ids []int32, seqlen, maxWindows int, progress func(done, total int)) (Result, error) {
	return perplexity(ctx, be, fam, load, ids, seqlen, maxWindows, progress, plan{hiddenBudget, callTokens, logitRows})
}

// plan holds the memory bounds of a perplexity run (tests shrink them).
type plan struct{ hiddenBytes, callTokens, logitRows int }

func perplexity(ctx context.Context, be kernels.Backend, fam model.Family, load Loader, ids []int32, seqlen, maxWindows int, progress func(done, total int), pl plan) (Result, error) {
	if seqlen < 2 {
		return Result{}, fmt.Errorf("eval: seqlen %d, want at least 2", seqlen)
	}
	nwin := len(ids) / seqlen
	if nwin == 0 {
		return Result{}, fmt.Errorf("eval: token stream of %d tokens is shorter than seqlen %d", len(ids), seqlen)
	}
	if maxWindows > 0 && nwin > maxWindows {
		nwin = maxWindows
	}
	cfg := fam.Config()
	hidden, vocab := cfg.HiddenSize, cfg.VocabSize
	perPass := max(1, pl.hiddenBytes/(seqlen*hidden*4))
	perCall := max(1, pl.callTokens/seqlen)
	nb := fam.NumBlocks()
	total := nwin * (nb + 2)
	done := 0
	step := func(n int) {
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	res := Result{Windows: nwin, Seqlen: seqlen, Tokens: nwin * seqlen, WindowNLL: make([]float64, nwin)}
	threads := max(1, be.Capabilities().Threads)
	logitRows := max(1, pl.logitRows)
	logits := make([]float32, min(logitRows, seqlen)*vocab)
	rowNLL := make([]float64, min(logitRows, seqlen))

	for p0 := 0; p0 < nwin; p0 += perPass {
		p1 := min(p0+perPass, nwin)
		x := make([]float32, (p1-p0)*seqlen*hidden)
		w, err := load(fam.EmbedTensors())
		if err != nil {
			return Result{}, fmt.Errorf("eval: load embedding: %w", err)
		}
		if err := fam.Embed(w, ids[p0*seqlen:p1*seqlen], x); err != nil {
			return Result{}, fmt.Errorf("eval: %w", err)
		}
		step(p1 - p0)
		for b := range nb {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			w, err := load(fam.BlockTensors(b))
			if err != nil {
				return Result{}, fmt.Errorf("eval: load block %d: %w", b, err)
			}
			for c0 := p0; c0 < p1; c0 += perCall {
				c1 := min(c0+perCall, p1)
				xs := x[(c0-p0)*seqlen*hidden : (c1-p0)*seqlen*hidden]
				if err := fam.ForwardBlock(be, b, w, xs, c1-c0, seqlen, nil); err != nil {
					return Result{}, fmt.Errorf("eval: block %d: %w", b, err)
				}
				step(c1 - c0)
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		w, err = load(fam.HeadTensors())
		if err != nil {
			return Result{}, fmt.Errorf("eval: load head: %w", err)
		}
		for win := p0; win < p1; win++ {
			xw := x[(win-p0)*seqlen*hidden : (win-p0+1)*seqlen*hidden]
			labels := ids[win*seqlen : (win+1)*seqlen]
			var sum float64
			// Rows 0..seqlen-2 predict labels 1..seqlen-1; the last row predicts
			// nothing and is not formed.
			for r0 := 0; r0 < seqlen-1; r0 += logitRows {
				r1 := min(r0+logitRows, seqlen-1)
				n := r1 - r0
				if err := fam.Logits(be, w, xw[r0*hidden:r1*hidden], n, logits[:n*vocab]); err != nil {
					return Result{}, fmt.Errorf("eval: head: %w", err)
				}
				if err := nllRows(rowNLL[:n], logits[:n*vocab], vocab, labels[r0+1:r1+1], threads); err != nil {
					return Result{}, fmt.Errorf("eval: window %d: %w", win, err)
				}
				for _, v := range rowNLL[:n] {
					sum += v
				}
			}
			res.WindowNLL[win] = sum / float64(seqlen-1)
			step(1)
		}
	}
	var s float64
	for _, v := range res.WindowNLL {
		s += v
	}
	res.NLL = s / float64(nwin)
	res.Perplexity = math.Exp(res.NLL)
	return res, nil
}

// nllRows writes dst[r] = logsumexp(logits[r]) - logits[r][labels[r]] for
// the rows of logits ([len(dst), vocab] float32), in float64. A label outside
// [0, vocab) is an error.
func nllRows(dst []float64, logits []float32, vocab int, labels []int32, workers int) error {
	for i, l := range labels {
		if l < 0 || int(l) >= vocab {
			return fmt.Errorf("token id %d at row %d outside the vocabulary [0, %d)", l, i, vocab)
		}
	}
	n := len(dst)
	workers = min(workers, n)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			for r := lo; r < hi; r++ {
				row := logits[r*vocab : (r+1)*vocab]
				mx := math.Inf(-1)
				for _, v := range row {
					mx = max(mx, float64(v))
				}
				var s float64
				for _, v := range row {
					s += math.Exp(float64(v) - mx)
				}
				dst[r] = mx + math.Log(s) - float64(row[labels[r]])
			}
		})
	}
	wg.Wait()
	return nil
}
