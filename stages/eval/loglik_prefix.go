package eval

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
)

// minShare is the shortest run of tokens that the prefix path runs once for
// several inputs; shorter shared runs (" the" at the start of two answers,
// "Question:" before every ARC question) are run with each input, which
// saves a level of ForwardSpans calls for little compute.
const minShare = 4

// prefixNode is a run of tokens [start, end) of a radix tree of model
// inputs: every input below it starts with the tokens seq[:end].
type prefixNode struct {
	parent     *prefixNode
	children   []*prefixNode
	start, end int
	// seq is an input of the subtree (its tokens [start, end) are the node's).
	seq []int32
	// terminal reports whether an input ends at end.
	terminal bool
	// level is the depth below the root (root 0); slot is the node's
	// KVCache slot when it has children (-1 otherwise); off is its first
	// token in the pass.
	level, slot, off int
}

// contrib is continuation token j of request req, scored by one logits row.
type contrib struct{ req, j int }

// prefixLogLikelihoods is LogLikelihoods through model.PrefixForwarder.
//
// Every request's model input is the plain path's, (ctx+cont)[-(maxLen+1):]
// without its last token, and identical inputs are one. The distinct inputs
// are sorted and cut into passes; in a pass they form a radix tree (a node
// is a run of tokens that every input below it shares), in which shared
// runs shorter than minShare tokens are pushed down into each branch. A
// node runs once, as a span that continues its parent's cached keys and
// values; a node with branches keeps its own, in its own KVCache slot that
// first receives a copy of its parent's prefix. Levels of the tree run one
// after another, each in ForwardSpans calls of about pl.callTokens tokens,
// and the cache is reused from block to block. So the context of an item
// runs once for all its choices, and longer shared beginnings (MMLU's
// subject header, WinoGrande's sentence before the blank, answers that
// start alike) run once too; only the compute changes, not the inputs.
//
// Memory and loading are the plain path's: passes of at most
// pl.hiddenBytes of hidden states (each token counted twice, to leave room
// for the keys and values kept), and in each pass the embedding, each block
// and the head are loaded once.
func prefixLogLikelihoods(ctx context.Context, be kernels.Backend, fam model.PrefixForwarder, load Loader, reqs []Request, maxLen int, progress func(done, total int), pl plan) ([]LogLik, error) {
	cfg := fam.Config()
	hidden, vocab := cfg.HiddenSize, cfg.VocabSize

	// Distinct inputs, sorted.
	byKey := map[string]int{}
	var inputs [][]int32
	inputOf := make([]int, len(reqs))
	for i, r := range reqs {
		inp := modelInput(r, maxLen)
		key := idsKey(inp)
		k, ok := byKey[key]
		if !ok {
			k = len(inputs)
			byKey[key] = k
			inputs = append(inputs, inp)
		}
		inputOf[i] = k
	}
	order := make([]int, len(inputs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return slices.Compare(inputs[a], inputs[b]) })
	lcp := make([]int, len(order)) // lcp[i]: shared with order[i-1]
	for i := 1; i < len(order); i++ {
		a, b := inputs[order[i-1]], inputs[order[i]]
		n := 0
		for n < len(a) && n < len(b) && a[n] == b[n] {
			n++
		}
		lcp[i] = n
	}
	reqsOf := make([][]int, len(inputs))
	for i, k := range inputOf {
		reqsOf[k] = append(reqsOf[k], i)
	}

	// Passes: runs of sorted inputs whose tree tokens fit the budget.
	type pass struct {
		levels [][]*prefixNode
		term   map[int]*prefixNode // input index → its node
		slots  int
		tokens int
	}
	var passes []pass
	total := 0
	for a := 0; a < len(order); {
		b, tokens := a, 0
		for b < len(order) {
			n := len(inputs[order[b]])
			if b > a {
				n -= lcp[b]
			}
			if b > a && 2*(tokens+n)*hidden*4 > pl.hiddenBytes {
				break
			}
			tokens += n
			b++
		}
		p := pass{term: map[int]*prefixNode{}}
		root := buildPrefixTree(inputs, order[a:b], lcp[a:b], p.term)
		p.levels, p.slots, p.tokens = layoutPrefixTree(root)
		for _, lv := range p.levels {
			total += len(lv)
		}
		passes = append(passes, p)
		a = b
	}

	out := make([]LogLik, len(reqs))
	terms := make([][]float64, len(reqs))
	for i := range out {
		out[i].Greedy = true
		terms[i] = make([]float64, len(reqs[i].Continuation))
	}
	nb := fam.NumBlocks()
	done := 0
	total *= nb + 2
	step := func(n int) {
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	threads := max(1, be.Capabilities().Threads)
	nLogit := max(1, pl.logitRows)
	logits := make([]float32, nLogit*vocab)

	for _, p := range passes {
		nodes := 0
		ids := make([]int32, p.tokens)
		type call struct {
			spans    []model.Span
			off, end int // token range in the pass
		}
		// levelCalls[l] are the calls of level l+1 (p.levels[l]).
		levelCalls := make([][]call, len(p.levels))
		for l, lv := range p.levels {
			nodes += len(lv)
			var cur call
			flush := func() {
				if len(cur.spans) > 0 {
					levelCalls[l] = append(levelCalls[l], cur)
				}
			}
			for _, n := range lv {
				copy(ids[n.off:], n.seq[n.start:n.end])
				if len(cur.spans) > 0 && cur.end-cur.off+n.end-n.start > pl.callTokens {
					flush()
					cur = call{}
				}
				if len(cur.spans) == 0 {
					cur.off, cur.end = n.off, n.off
				}
				sp := model.Span{Start: n.start, Len: n.end - n.start}
				switch {
				case n.slot >= 0:
					sp.Seq, sp.Keep = n.slot, true
				case n.parent.slot >= 0:
					sp.Seq = n.parent.slot
				}
				cur.spans = append(cur.spans, sp)
				cur.end += n.end - n.start
			}
			flush()
		}
		x := make([]float32, p.tokens*hidden)
		w, err := load(fam.EmbedTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load embedding: %w", err)
		}
		if err := fam.Embed(w, ids, x); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		step(nodes)
		kv := model.NewKVCache(p.slots)
		for b := range nb {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			w, err := load(fam.BlockTensors(b))
			if err != nil {
				return nil, fmt.Errorf("eval: load block %d: %w", b, err)
			}
			for l, calls := range levelCalls {
				// A branch with branches of its own continues its parent's
				// prefix in its own slot.
				for _, n := range p.levels[l] {
					if n.slot >= 0 && n.parent.slot >= 0 {
						kv.CopyPrefix(n.slot, n.parent.slot, n.start)
					}
				}
				for _, c := range calls {
					if err := fam.ForwardSpans(be, b, w, x[c.off*hidden:c.end*hidden], c.spans, kv); err != nil {
						return nil, fmt.Errorf("eval: block %d: %w", b, err)
					}
					step(len(c.spans))
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err = load(fam.HeadTensors())
		if err != nil {
			return nil, fmt.Errorf("eval: load head: %w", err)
		}
		// The logits rows the pass's requests need: input position q
		// (inside the node on the input's path that holds it) predicts
		// continuation token j = q-(len(input)-len(cont)).
		rowOf := map[int]int{}
		var rows []int
		var contribs [][]contrib
		for k, term := range p.term {
			n := len(inputs[k])
			for _, ri := range reqsOf[k] {
				cont := reqs[ri].Continuation
				nd := term
				for j := len(cont) - 1; j >= 0; j-- {
					q := n - len(cont) + j
					for q < nd.start {
						nd = nd.parent
					}
					tok := nd.off + q - nd.start
					r, ok := rowOf[tok]
					if !ok {
						r = len(rows)
						rowOf[tok] = r
						rows = append(rows, tok)
						contribs = append(contribs, nil)
					}
					contribs[r] = append(contribs[r], contrib{ri, j})
				}
			}
		}
		// Rows in token order.
		ord := make([]int, len(rows))
		for i := range ord {
			ord[i] = i
		}
		sort.Slice(ord, func(a, b int) bool { return rows[ord[a]] < rows[ord[b]] })
		xh := make([]float32, nLogit*hidden)
		lse := make([]float64, nLogit)
		arg := make([]int32, nLogit)
		for c0 := 0; c0 < len(ord); c0 += nLogit {
			c1 := min(c0+nLogit, len(ord))
			n := c1 - c0
			for i, r := range ord[c0:c1] {
				copy(xh[i*hidden:(i+1)*hidden], x[rows[r]*hidden:(rows[r]+1)*hidden])
			}
			if err := fam.Logits(be, w, xh[:n*hidden], n, logits[:n*vocab]); err != nil {
				return nil, fmt.Errorf("eval: head: %w", err)
			}
			lseArgmax(lse[:n], arg[:n], logits[:n*vocab], vocab, threads)
			for i, r := range ord[c0:c1] {
				lrow := logits[i*vocab : (i+1)*vocab]
				for _, c := range contribs[r] {
					t := reqs[c.req].Continuation[c.j]
					terms[c.req][c.j] = float64(lrow[t]) - lse[i]
					if arg[i] != t {
						out[c.req].Greedy = false
					}
				}
			}
		}
		step(nodes)
	}
	// Each request's sum in continuation order, as the plain path adds.
	for i, ts := range terms {
		for _, v := range ts {
			out[i].LogProb += v
		}
	}
	return out, nil
}

// buildPrefixTree builds the radix tree of the inputs named by idx (sorted,
// distinct; lcp[i] is the length shared by idx[i] and idx[i-1], lcp[0]
// ignored), records each input's node in term, and pushes shared runs
// shorter than minShare down into their branches. It returns the root
// (end 0).
func buildPrefixTree(inputs [][]int32, idx, lcp []int, term map[int]*prefixNode) *prefixNode {
	root := &prefixNode{}
	stack := []*prefixNode{root}
	for i, k := range idx {
		s := inputs[k]
		l := 0
		if i > 0 {
			l = lcp[i]
		}
		var last *prefixNode
		for stack[len(stack)-1].end > l {
			last = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
		top := stack[len(stack)-1]
		if top.end < l {
			// Split the edge to last (top's newest child) at l.
			mid := &prefixNode{parent: top, start: top.end, end: l, seq: last.seq, children: []*prefixNode{last}}
			top.children[len(top.children)-1] = mid
			last.parent, last.start = mid, l
			stack = append(stack, mid)
			top = mid
		}
		if len(s) <= l {
			panic(fmt.Sprintf("eval: input %d is a prefix of the input sorted before it", k))
		}
		leaf := &prefixNode{parent: top, start: l, end: len(s), seq: s, terminal: true}
		top.children = append(top.children, leaf)
		stack = append(stack, leaf)
		term[k] = leaf
	}
	// Push short shared runs down, top-down, so that a run counts the
	// tokens its pushed-down ancestors give it.
	var settle func(parent, c *prefixNode) []*prefixNode
	settle = func(parent, c *prefixNode) []*prefixNode {
		if !c.terminal && c.end-c.start < minShare {
			var out []*prefixNode
			for _, g := range c.children {
				g.start = c.start
				out = append(out, settle(parent, g)...)
			}
			return out
		}
		c.parent = parent
		var kids []*prefixNode
		for _, g := range c.children {
			kids = append(kids, settle(c, g)...)
		}
		c.children = kids
		return []*prefixNode{c}
	}
	var kids []*prefixNode
	for _, c := range root.children {
		kids = append(kids, settle(root, c)...)
	}
	root.children = kids
	root.slot = -1
	return root
}

// layoutPrefixTree assigns levels, KV slots (to nodes with children) and
// token offsets (level by level) below root, and returns the nodes by level
// (levels[0] is level 1), the number of slots and of tokens.
func layoutPrefixTree(root *prefixNode) (levels [][]*prefixNode, slots, tokens int) {
	cur := root.children
	for lv := 1; len(cur) > 0; lv++ {
		var next []*prefixNode
		for _, n := range cur {
			n.level, n.off, n.slot = lv, tokens, -1
			tokens += n.end - n.start
			if len(n.children) > 0 {
				n.slot = slots
				slots++
			}
			next = append(next, n.children...)
		}
		levels = append(levels, cur)
		cur = next
	}
	return levels, slots, tokens
}
