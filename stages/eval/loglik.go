package eval

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/tokenizer"
)

// Request is one loglikelihood request in token ids: the log-probability of
// Continuation given Context. Both are non-empty.
type Request struct {
	Context, Continuation []int32
}

// LogLik is the answer to a Request.
type LogLik struct {
	// LogProb is Σ_j log p(cont_j | ctx, cont_<j) in nats (float64
	// log-softmax over float32 logits).
	LogProb float64
	// Greedy reports whether every continuation token is the argmax of its
	// logits row (the harness's is_greedy).
	Greedy bool
}

// EncodePair tokenizes a (context, continuation) pair as lm-evaluation-harness
// v0.4 does for causal models (lm_eval/api/model.py TemplateLM._encode_pair
// and loglikelihood, tok_encode of models/huggingface.py with add_bos_token
// left unset):
//
//   - trailing whitespace of the context (Python rstrip) moves to the front
//     of the continuation;
//   - whole = encode(context+continuation), ctx = encode(context), and the
//     continuation ids are whole[len(ctx):], so a token that straddles the
//     boundary counts as continuation;
//   - encode is the tokenizer's default encoding with special tokens: BOS is
//     prepended when tok.AddBOS() (Llama 2/3), nothing otherwise (SmolLM2,
//     GPT-2 style);
//   - an empty context becomes the prefix token (BOS, or EOS when the
//     tokenizer has no BOS) before encode(continuation) without special
//     tokens, unless the continuation already starts with that token, in
//     which case its first token becomes the context.
//
// It returns an error when either part would be empty.
func EncodePair(tok tokenizer.Tokenizer, context, continuation string) (Request, error) {
	if context == "" {
		cont := tok.Encode(continuation)
		prefix := tok.BOS()
		if prefix < 0 {
			prefix = tok.EOS()
		}
		if len(cont) == 0 {
			return Request{}, fmt.Errorf("eval: continuation %q encodes to no tokens", continuation)
		}
		if prefix == cont[0] {
			if len(cont) < 2 {
				return Request{}, fmt.Errorf("eval: continuation %q is only the prefix token", continuation)
			}
			return Request{Context: cont[:1], Continuation: cont[1:]}, nil
		}
		if prefix < 0 {
			return Request{}, fmt.Errorf("eval: empty context and the tokenizer has neither BOS nor EOS")
		}
		return Request{Context: []int32{prefix}, Continuation: cont}, nil
	}
	trimmed := strings.TrimRightFunc(context, pyIsSpace)
	if n := len(context) - len(trimmed); n > 0 {
		continuation = context[len(trimmed):] + continuation
		context = trimmed
	}
	whole := Tokenize(tok, context+continuation)
	ctx := Tokenize(tok, context)
	if len(ctx) == 0 {
		return Request{}, fmt.Errorf("eval: context %q encodes to no tokens", context)
	}
	if len(whole) <= len(ctx) {
		return Request{}, fmt.Errorf("eval: continuation %q after context %q adds no tokens", continuation, context)
	}
	return Request{Context: ctx, Continuation: whole[len(ctx):]}, nil
}

// scoreRow is one forward sequence: the model input ids and the requests it
// answers (requests whose input, (ctx+cont)[-(maxLen+1):][:-1], is ids).
type scoreRow struct {
	ids  []int32
	reqs []int
	// maxCont is the longest continuation among reqs.
	maxCont int
}

// LogLikelihoods answers reqs as lm-evaluation-harness's HFLM
// _loglikelihood_tokens does: the model input is (ctx+cont)[-(maxLen+1):]
// without its last token (left truncation to maxLen tokens; maxLen ≤ 0 means
// fam.Config().MaxPositionEmbeddings, or 2048 when that is unset), the
// logits at the last len(cont) input positions score the continuation, and
// log-softmax runs in float64.
//
// Reuse and batching: when fam implements model.PrefixForwarder, shared
// beginnings of the model inputs run once. The inputs are exactly the
// plain path's (so the context/continuation split and the harness's
// tokenization are untouched); they form a radix tree of token runs, in
// which a run shared by several inputs — an item's context before its
// choices, MMLU's subject header, WinoGrande's sentence before the blank,
// answers that begin alike — runs once, with its keys and values kept per
// block in a model.KVCache, and each branch runs only its own tokens after
// it. Shared runs shorter than 4 tokens run with each branch. Grouping is
// by token ids, never by the context string. The answers equal
// PlainLogLikelihoods' up to float32 rounding (the tests hold them to 1e-5
// relative); memory and weight loading follow the plain path's passes.
// Without model.PrefixForwarder it is PlainLogLikelihoods.
//
// progress, if not nil, is called from the calling goroutine with done and
// total in units of sequence-steps, total = sequences·(NumBlocks+2), where
// a sequence is a forward input (PlainLogLikelihoods) or a node of the tree
// (the prefix path). It returns an error for an empty context or
// continuation, a token id outside the vocabulary, or the first error of
// load, the family or ctx.
func LogLikelihoods(ctx context.Context, be kernels.Backend, fam model.Family, load Loader, reqs []Request, maxLen int, progress func(done, total int)) ([]LogLik, error) {
	return logLikelihoods(ctx, be, fam, load, reqs, maxLen, progress, plan{hiddenBudget, callTokens, logitRows}, false)
}

// PlainLogLikelihoods is LogLikelihoods without context reuse across
// continuations, for every family: one forward per distinct input sequence.
//
// Reuse and batching: requests with the same input sequence share one
// forward (for MMLU the four one-token answers " A"…" D" after one
// context are one sequence, as the harness's logits cache groups them);
// identical requests are computed once. Sequences are sorted by length,
// longest first, and batched into ForwardBlock calls of about 2048 tokens,
// each right-padded to its longest sequence (causal attention keeps padding
// from reaching earlier positions). As in Perplexity, the sequences are
// processed in passes of at most about 1 GiB of hidden states, and in each
// pass the embedding, each block and the head are loaded once through load.
func PlainLogLikelihoods(ctx context.Context, be kernels.Backend, fam model.Family, load Loader, reqs []Request, maxLen int, progress func(done, total int)) ([]LogLik, error) {
	return logLikelihoods(ctx, be, fam, load, reqs, maxLen, progress, plan{hiddenBudget, callTokens, logitRows}, true)
}

// effectiveMaxLen is the harness's max_length: maxLen when positive, else
// the model's max_position_embeddings, else 2048.
func effectiveMaxLen(cfg *model.Config, maxLen int) int {
	if maxLen > 0 {
		return maxLen
	}
	if cfg.MaxPositionEmbeddings > 0 {
		return cfg.MaxPositionEmbeddings
	}
	return 2048
}

// checkRequests validates reqs against the vocabulary and maxLen.
func checkRequests(reqs []Request, vocab, maxLen int) error {
	for i, r := range reqs {
		if len(r.Context) == 0 || len(r.Continuation) == 0 {
			return fmt.Errorf("eval: request %d has an empty context or continuation", i)
		}
		if len(r.Continuation) > maxLen {
			return fmt.Errorf("eval: request %d: continuation of %d tokens exceeds the maximum length %d", i, len(r.Continuation), maxLen)
		}
		for _, ids := range [2][]int32{r.Context, r.Continuation} {
			for _, id := range ids {
				if id < 0 || int(id) >= vocab {
					return fmt.Errorf("eval: request %d: token id %d outside the vocabulary [0, %d)", i, id, vocab)
				}
			}
		}
	}
	return nil
}

func logLikelihoods(ctx context.Context, be kernels.Backend, fam model.Family, load Loader, reqs []Request, maxLen int, progress func(done, total int), pl plan, plain bool) ([]LogLik, error) {
	cfg := fam.Config()
	hidden, vocab := cfg.HiddenSize, cfg.VocabSize
	maxLen = effectiveMaxLen(cfg, maxLen)
	if err := checkRequests(reqs, vocab, maxLen); err != nil {
		return nil, err
	}
	if pf, ok := fam.(model.PrefixForwarder); ok && !plain {
		return prefixLogLikelihoods(ctx, be, pf, load, reqs, maxLen, progress, pl)
	}
	// Group requests by input sequence.
	byKey := map[string]int{}
	var rows []*scoreRow
	for i, r := range reqs {
		inp := modelInput(r, maxLen)
		key := idsKey(inp)
		k, ok := byKey[key]
		if !ok {
			k = len(rows)
			byKey[key] = k
			rows = append(rows, &scoreRow{ids: inp})
		}
		rows[k].reqs = append(rows[k].reqs, i)
		rows[k].maxCont = max(rows[k].maxCont, len(r.Continuation))
	}
	sort.SliceStable(rows, func(a, b int) bool { return len(rows[a].ids) > len(rows[b].ids) })

	out := make([]LogLik, len(reqs))
	for i := range out {
		out[i].Greedy = true
	}
	nb := fam.NumBlocks()
	total := len(rows) * (nb + 2)
	done := 0
	step := func(n int) {
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	threads := max(1, be.Capabilities().Threads)
	nLogit := max(1, pl.logitRows)
	logits := make([]float32, nLogit*vocab)

	for p0 := 0; p0 < len(rows); {
		// A pass: rows p0..p1-1 whose padded batches fit the hidden budget.
		type batch struct{ r0, r1, seqlen, off int }
		var batches []batch
		tokens := 0
		p1 := p0
		for p1 < len(rows) {
			seqlen := len(rows[p1].ids)
			n := max(1, pl.callTokens/seqlen)
			r1 := min(p1+n, len(rows))
			sz := (r1 - p1) * seqlen
			if len(batches) > 0 && (tokens+sz)*hidden*4 > pl.hiddenBytes {
				break
			}
			batches = append(batches, batch{p1, r1, seqlen, tokens})
			tokens += sz
			p1 = r1
		}
		ids := make([]int32, tokens)
		for _, bt := range batches {
			for r := bt.r0; r < bt.r1; r++ {
				copy(ids[bt.off+(r-bt.r0)*bt.seqlen:], rows[r].ids) // the rest stays 0 (padding)
			}
		}
		x := make([]float32, tokens*hidden)
		w, err := load(fam.EmbedTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load embedding: %w", err)
		}
		if err := fam.Embed(w, ids, x); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		step(p1 - p0)
		for b := range nb {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			w, err := load(fam.BlockTensors(b))
			if err != nil {
				return nil, fmt.Errorf("eval: load block %d: %w", b, err)
			}
			for _, bt := range batches {
				xs := x[bt.off*hidden : (bt.off+(bt.r1-bt.r0)*bt.seqlen)*hidden]
				if err := fam.ForwardBlock(be, b, w, xs, bt.r1-bt.r0, bt.seqlen, nil); err != nil {
					return nil, fmt.Errorf("eval: block %d: %w", b, err)
				}
				step(bt.r1 - bt.r0)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err = load(fam.HeadTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load head: %w", err)
		}
		// Positions whose logits are needed: the last maxCont input
		// positions of each row.
		type pos struct {
			row, p int // row index, position in the row's input
			tok    int // token offset in the pass (row start + p)
		}
		var need []pos
		for _, bt := range batches {
			for r := bt.r0; r < bt.r1; r++ {
				n := len(rows[r].ids)
				start := bt.off + (r-bt.r0)*bt.seqlen
				for p := n - rows[r].maxCont; p < n; p++ {
					need = append(need, pos{r, p, start + p})
				}
			}
		}
		xh := make([]float32, nLogit*hidden)
		lse := make([]float64, nLogit)
		arg := make([]int32, nLogit)
		for c0 := 0; c0 < len(need); c0 += nLogit {
			c1 := min(c0+nLogit, len(need))
			n := c1 - c0
			for i, q := range need[c0:c1] {
				copy(xh[i*hidden:(i+1)*hidden], x[q.tok*hidden:(q.tok+1)*hidden])
			}
			if err := fam.Logits(be, w, xh[:n*hidden], n, logits[:n*vocab]); err != nil {
				return nil, fmt.Errorf("eval: head: %w", err)
			}
			lseArgmax(lse[:n], arg[:n], logits[:n*vocab], vocab, threads)
			for i, q := range need[c0:c1] {
				row := rows[q.row]
				n := len(row.ids)
				lrow := logits[i*vocab : (i+1)*vocab]
				for _, ri := range row.reqs {
					cont := reqs[ri].Continuation
					// Input position p predicts continuation token j = p-(n-len(cont)).
					j := q.p - (n - len(cont))
					if j < 0 {
						continue
					}
					t := cont[j]
					out[ri].LogProb += float64(lrow[t]) - lse[i]
					if arg[i] != t {
						out[ri].Greedy = false
					}
				}
			}
		}
		step(p1 - p0)
		p0 = p1
	}
	return out, nil
}

// idsKey is a map key for a token sequence.
func idsKey(ids []int32) string {
	b := make([]byte, 4*len(ids))
	for i, v := range ids {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return string(b)
}

// lseArgmax writes, for each row of logits ([len(lse), vocab] float32),
// lse[r] = logsumexp(row) in float64 and arg[r] = the first index of the
// row's maximum (torch.argmax's tie rule on CPU).
func lseArgmax(lse []float64, arg []int32, logits []float32, vocab, workers int) {
	n := len(lse)
	workers = max(1, min(workers, n))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			for r := lo; r < hi; r++ {
				row := logits[r*vocab : (r+1)*vocab]
				mx, am := row[0], 0
				for i, v := range row {
					if v > mx {
						mx, am = v, i
					}
				}
				var s float64
				for _, v := range row {
					s += math.Exp(float64(v) - float64(mx))
				}
				lse[r] = float64(mx) + math.Log(s)
				arg[r] = int32(am)
			}
		})
	}
	wg.Wait()
}

// modelInput is the model input of request r as the harness forms it:
// (ctx+cont)[-(maxLen+1):][:-1], the last maxLen+1 tokens of context and
// continuation without the final one (its log-probability is read at the
// position before it).
func modelInput(r Request, maxLen int) []int32 {
	all := make([]int32, 0, len(r.Context)+len(r.Continuation))
	all = append(append(all, r.Context...), r.Continuation...)
	if len(all) > maxLen+1 {
		all = all[len(all)-(maxLen+1):]
	}
	return all[:len(all)-1]
}
