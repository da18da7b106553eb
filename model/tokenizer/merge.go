package tokenizer

// merge is the result of merging one pair of ids.
type merge struct {
	rank, id int32
}

// mergeTable maps a pair of ids (pairKey) to the rank of its merge rule and
// the id of the merged token.
type mergeTable map[uint64]merge

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// apply merges the symbols of w in place and returns the merged prefix.
func (mt mergeTable) apply(w []int32) []int32 {
	if len(w) <= smallWord {
		return mt.mergeScan(w)
	}
	return mt.mergeHeap(w)
}

// smallWord is the length up to which mergeScan (quadratic, no allocation)
// is used instead of mergeHeap.
const smallWord = 48

// mergeScan applies merges in place: repeatedly the pair of lowest rank,
// leftmost on ties, which is the order of tokenizers' BPE (word.rs
// merge_all: a heap of (rank, position)). It returns the merged prefix of w.
func (mt mergeTable) mergeScan(w []int32) []int32 {
	for len(w) > 1 {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(w); i++ {
			m, ok := mt[pairKey(w[i], w[i+1])]
			if ok && (at < 0 || m.rank < best.rank) {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		w[at] = best.id
		w = append(w[:at+1], w[at+2:]...)
	}
	return w
}

// heapItem is a candidate merge of the symbol at pos with its right
// neighbour.
type heapItem struct {
	rank, pos, id int32
}

func (a heapItem) less(b heapItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap does what mergeScan does in O(n log n) for long pieces, as
// tokenizers' word.rs does: symbols in a linked list, candidate merges in a
// min-heap, stale candidates skipped when popped.
func (mt mergeTable) mergeHeap(w []int32) []int32 {
	n := len(w)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	var h []heapItem
	push := func(it heapItem) {
		h = append(h, it)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].less(h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() heapItem {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(h) && h[l].less(h[m]) {
				m = l
			}
			if r < len(h) && h[r].less(h[m]) {
				m = r
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
		return top
	}
	for i := range w {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	for i := 0; i+1 < n; i++ {
		if m, ok := mt[pairKey(w[i], w[i+1])]; ok {
			push(heapItem{m.rank, int32(i), m.id})
		}
	}
	for len(h) > 0 {
		it := pop()
		a := it.pos
		if !alive[a] || next[a] < 0 {
			continue
		}
		b := next[a]
		m, ok := mt[pairKey(w[a], w[b])]
		if !ok || m.id != it.id {
			continue
		}
		w[a] = m.id
		alive[b] = false
		next[a] = next[b]
		if next[b] >= 0 {
			prev[next[b]] = a
		}
		if p := prev[a]; p >= 0 {
			if m, ok := mt[pairKey(w[p], w[a])]; ok {
				push(heapItem{m.rank, p, m.id})
			}
		}
		if q := next[a]; q >= 0 {
			if m, ok := mt[pairKey(w[a], w[q])]; ok {
				push(heapItem{m.rank, a, m.id})
			}
		}
	}
	k := 0
	for i := int32(0); i >= 0; i = next[i] {
		w[k] = w[i]
		k++
	}
	return w[:k]
}
