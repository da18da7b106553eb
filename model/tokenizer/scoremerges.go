package tokenizer

import (
	"sort"
	"unicode/utf8"
)

// MergesFromScores recovers BPE merges from a vocabulary with per-token
// scores, as transformers' generate_merges(vocab, vocab_scores) does
// (tokenization_utils_base.py) for a GGUF whose tokenizer.ggml.model is
// "llama" and which lists no merges: every split of every token into two
// tokens is a merge carrying the token's score; a token's merges are ordered
// by the ids of their parts, and all merges are then stably sorted by score,
// then length of the left part, then of the right part (lengths in code
// points), each descending.
//
// tokens are in id order; scores[i] is the score of tokens[i] (len(scores)
// must equal len(tokens), else it panics). A token spelled twice takes the
// last id and the last score and keeps its first position, as the Python
// dicts do.
func MergesFromScores(tokens []string, scores []float64) [][2]string {
	if len(scores) != len(tokens) {
		panic("tokenizer: MergesFromScores: len(scores) != len(tokens)")
	}
	id := make(map[string]int, len(tokens))
	score := make(map[string]float64, len(tokens))
	order := make([]string, 0, len(tokens))
	for i, t := range tokens {
		if _, ok := id[t]; !ok {
			order = append(order, t)
		}
		id[t], score[t] = i, scores[i]
	}
	type cand struct {
		l, r       string
		score      float64
		lenL, lenR int
	}
	var all []cand
	var local []cand
	for _, t := range order {
		local = local[:0]
		for i := range t {
			if i == 0 {
				continue
			}
			l, r := t[:i], t[i:]
			if _, ok := id[l]; !ok {
				continue
			}
			if _, ok := id[r]; !ok {
				continue
			}
			local = append(local, cand{l, r, score[t], utf8.RuneCountInString(l), utf8.RuneCountInString(r)})
		}
		sort.SliceStable(local, func(a, b int) bool {
			la, lb := id[local[a].l], id[local[b].l]
			return la < lb || la == lb && id[local[a].r] < id[local[b].r]
		})
		all = append(all, local...)
	}
	sort.SliceStable(all, func(a, b int) bool {
		x, y := all[a], all[b]
		if x.score != y.score {
			return x.score > y.score
		}
		if x.lenL != y.lenL {
			return x.lenL > y.lenL
		}
		return x.lenR > y.lenR
	})
	out := make([][2]string, len(all))
	for i, c := range all {
		out[i] = [2]string{c.l, c.r}
	}
	return out
}
