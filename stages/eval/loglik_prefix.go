package eval

import (
	"context"
	"fmt"
	"sort"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
)

// prefixGroup is a token sequence run once (the shared context, or a whole
// input) and the distinct continuations run after it.
type prefixGroup struct {
	ids []int32
	// sufs are the distinct non-empty suffix inputs run after ids.
	sufs   [][]int32
	sufKey map[string]int
	// keep reports whether suffixes continue the group (its K/V is kept).
	keep bool
}

// prefixReq places a request in the groups: its model input is the first
// n tokens of groups[g].ids + groups[g].sufs[s] (s = -1: of groups[g].ids).
type prefixReq struct{ g, s, n int }

// contrib is continuation token j of request req, scored by one logits row.
type contrib struct{ req, j int }

// prefixLogLikelihoods is LogLikelihoods through model.PrefixForwarder.
//
// Each request's model input is the harness's (ctx+cont)[-(maxLen+1):][:-1]
// split as prefix = ctx, suffix = cont[:-1] (the continuation tokens after
// the first, which the last context position predicts). Requests are
// grouped by the prefix's token ids (not the context string: the harness
// encodes the context on its own, so choices with one context share its
// ids), distinct suffixes of a group are run once each, and a group with at
// most one distinct suffix is run as one sequence prefix+suffix. A request
// that the harness left-truncates (len(ctx)+len(cont) > maxLen+1) is its
// own sequence, the truncated input. So MMLU (one-token answers) runs one
// sequence per item, as the plain path does, ARC, PIQA and OpenBookQA run
// the question once and each answer's tokens after it, and WinoGrande (a
// shared continuation after different contexts) runs one sequence per
// choice.
//
// Order of work, as in the plain path: passes of at most pl.hiddenBytes of
// hidden states (a group's context counts three times, for its keys and
// values), and in each pass the embedding, each block and the head are
// loaded once. In a block, the groups' sequences run first in
// ForwardSpans calls of about pl.callTokens tokens with their keys and
// values kept in a KVCache that is reused from block to block, then the
// suffixes, each attending to its group's cached keys and values.
func prefixLogLikelihoods(ctx context.Context, be kernels.Backend, fam model.PrefixForwarder, load Loader, reqs []Request, maxLen int, progress func(done, total int), pl plan) ([]LogLik, error) {
	cfg := fam.Config()
	hidden, vocab := cfg.HiddenSize, cfg.VocabSize

	// Group the requests by prefix, then their suffixes.
	byKey := map[string]int{}
	var groups []*prefixGroup
	place := make([]prefixReq, len(reqs))
	suf := make([][]int32, len(reqs))
	for i, r := range reqs {
		pre := r.Context
		if len(r.Context)+len(r.Continuation) > maxLen+1 {
			all := make([]int32, 0, len(r.Context)+len(r.Continuation))
			all = append(append(all, r.Context...), r.Continuation...)
			pre = all[len(all)-(maxLen+1) : len(all)-1]
		} else {
			suf[i] = r.Continuation[:len(r.Continuation)-1]
		}
		key := idsKey(pre)
		g, ok := byKey[key]
		if !ok {
			g = len(groups)
			byKey[key] = g
			groups = append(groups, &prefixGroup{ids: pre, sufKey: map[string]int{}})
		}
		place[i] = prefixReq{g, -1, len(pre) + len(suf[i])}
		if len(suf[i]) > 0 {
			gr := groups[g]
			sk := idsKey(suf[i])
			s, ok := gr.sufKey[sk]
			if !ok {
				s = len(gr.sufs)
				gr.sufKey[sk] = s
				gr.sufs = append(gr.sufs, suf[i])
			}
			place[i].s = s
		}
	}
	// A group with one distinct suffix runs as one sequence. Its requests
	// without a suffix read the same prefix rows, which stay in place.
	for _, gr := range groups {
		switch len(gr.sufs) {
		case 0:
		case 1:
			gr.ids = append(append(make([]int32, 0, len(gr.ids)+len(gr.sufs[0])), gr.ids...), gr.sufs[0]...)
			gr.sufs = nil
		default:
			gr.keep = true
		}
	}
	for i, p := range place {
		if p.s >= 0 && !groups[p.g].keep {
			// The suffix is now the tail of the group's sequence.
			place[i].s = -1
		}
	}

	out := make([]LogLik, len(reqs))
	for i := range out {
		out[i].Greedy = true
	}
	nb := fam.NumBlocks()
	seqs := 0
	for _, gr := range groups {
		seqs += 1 + len(gr.sufs)
	}
	total := seqs * (nb + 2)
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
	// reqsOf lists each group's requests.
	reqsOf := make([][]int, len(groups))
	for i, p := range place {
		reqsOf[p.g] = append(reqsOf[p.g], i)
	}

	for g0 := 0; g0 < len(groups); {
		// A pass: groups g0..g1-1.
		g1, budget := g0, 0
		for g1 < len(groups) {
			gr := groups[g1]
			sz := len(gr.ids)
			if gr.keep {
				sz *= 3
			}
			for _, s := range gr.sufs {
				sz += len(s)
			}
			if g1 > g0 && (budget+sz)*hidden*4 > pl.hiddenBytes {
				break
			}
			budget += sz
			g1++
		}
		// Token layout of the pass: every group's sequence, then every
		// suffix, each contiguous; calls are runs of spans.
		var preSpans, sufSpans []model.Span
		var ids []int32
		preOff := make([]int, g1-g0)
		sufOff := make([][]int, g1-g0)
		for g := g0; g < g1; g++ {
			gr := groups[g]
			preOff[g-g0] = len(ids)
			preSpans = append(preSpans, model.Span{Seq: g - g0, Start: 0, Len: len(gr.ids), Keep: gr.keep})
			ids = append(ids, gr.ids...)
		}
		for g := g0; g < g1; g++ {
			gr := groups[g]
			for _, s := range gr.sufs {
				sufOff[g-g0] = append(sufOff[g-g0], len(ids))
				sufSpans = append(sufSpans, model.Span{Seq: g - g0, Start: len(gr.ids), Len: len(s)})
				ids = append(ids, s...)
			}
		}
		type call struct {
			spans    []model.Span
			off, end int // token range in the pass
		}
		var calls []call
		chunk := func(spans []model.Span, off int) {
			for i := 0; i < len(spans); {
				c := call{off: off}
				n := 0
				for i < len(spans) && (n == 0 || n+spans[i].Len <= pl.callTokens) {
					c.spans = append(c.spans, spans[i])
					n += spans[i].Len
					i++
				}
				off += n
				c.end = off
				calls = append(calls, c)
			}
		}
		chunk(preSpans, 0)
		chunk(sufSpans, preOff[len(preOff)-1]+len(groups[g1-1].ids))

		x := make([]float32, len(ids)*hidden)
		w, err := load(fam.EmbedTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load embedding: %w", err)
		}
		if err := fam.Embed(w, ids, x); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		nseq := len(preSpans) + len(sufSpans)
		step(nseq)
		kv := model.NewKVCache(g1 - g0)
		for b := range nb {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			w, err := load(fam.BlockTensors(b))
			if err != nil {
				return nil, fmt.Errorf("eval: load block %d: %w", b, err)
			}
			for _, c := range calls {
				if err := fam.ForwardSpans(be, b, w, x[c.off*hidden:c.end*hidden], c.spans, kv); err != nil {
					return nil, fmt.Errorf("eval: block %d: %w", b, err)
				}
				step(len(c.spans))
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err = load(fam.HeadTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load head: %w", err)
		}
		// The logits rows the pass's requests need: input position q of a
		// request with input prefix+suffix (length n) predicts continuation
		// token j = q-(n-len(cont)).
		rowOf := map[int]int{}
		var rows []int
		var contribs [][]contrib
		for g := g0; g < g1; g++ {
			gr := groups[g]
			for _, ri := range reqsOf[g] {
				p := place[ri]
				cont := reqs[ri].Continuation
				n := p.n
				for j := range cont {
					q := n - len(cont) + j
					tok := preOff[g-g0] + q
					if q >= len(gr.ids) {
						tok = sufOff[g-g0][p.s] + q - len(gr.ids)
					}
					k, ok := rowOf[tok]
					if !ok {
						k = len(rows)
						rowOf[tok] = k
						rows = append(rows, tok)
						contribs = append(contribs, nil)
					}
					contribs[k] = append(contribs[k], contrib{ri, j})
				}
			}
		}
		// Token order, so each request sums its tokens in order.
		order := make([]int, len(rows))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return rows[order[a]] < rows[order[b]] })
		xh := make([]float32, nLogit*hidden)
		lse := make([]float64, nLogit)
		arg := make([]int32, nLogit)
		for c0 := 0; c0 < len(order); c0 += nLogit {
			c1 := min(c0+nLogit, len(order))
			n := c1 - c0
			for i, k := range order[c0:c1] {
				copy(xh[i*hidden:(i+1)*hidden], x[rows[k]*hidden:(rows[k]+1)*hidden])
			}
			if err := fam.Logits(be, w, xh[:n*hidden], n, logits[:n*vocab]); err != nil {
				return nil, fmt.Errorf("eval: head: %w", err)
			}
			lseArgmax(lse[:n], arg[:n], logits[:n*vocab], vocab, threads)
			for i, k := range order[c0:c1] {
				lrow := logits[i*vocab : (i+1)*vocab]
				for _, c := range contribs[k] {
					t := reqs[c.req].Continuation[c.j]
					out[c.req].LogProb += float64(lrow[t]) - lse[i]
					if arg[i] != t {
						out[c.req].Greedy = false
					}
				}
			}
		}
		step(nseq)
		g0 = g1
	}
	return out, nil
}
