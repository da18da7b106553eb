package tokenizer

import "sort"

// addedMatcher finds added tokens in text the way Hugging Face tokenizers'
// AddedVocabulary does (an Aho-Corasick automaton with leftmost-longest
// match semantics): scanning left to right, the first position where some
// token starts wins, and there the longest token.
type addedMatcher struct {
	// groups holds, per first byte, the tokens starting with it.
	groups [256]*addedGroup
	n      int
}

// addedGroup is the tokens that share a first byte: their distinct
// lengths, longest first, and the tokens by text.
type addedGroup struct {
	lens []int
	ids  map[string]int32
}

// add files token text under id. A repeated text keeps the later id.
func (m *addedMatcher) add(text string, id int32) {
	if text == "" {
		return
	}
	g := m.groups[text[0]]
	if g == nil {
		g = &addedGroup{ids: map[string]int32{}}
		m.groups[text[0]] = g
	}
	if _, ok := g.ids[text]; !ok {
		m.n++
		i := sort.Search(len(g.lens), func(i int) bool { return g.lens[i] <= len(text) })
		if i == len(g.lens) || g.lens[i] != len(text) {
			g.lens = append(g.lens, 0)
			copy(g.lens[i+1:], g.lens[i:])
			g.lens[i] = len(text)
		}
	}
	g.ids[text] = id
}

// empty reports whether no token was added.
func (m *addedMatcher) empty() bool { return m.n == 0 }

// at returns the id and length of the longest token that starts at s[i:],
// or ok false.
func (m *addedMatcher) at(s string, i int) (id int32, n int, ok bool) {
	g := m.groups[s[i]]
	if g == nil {
		return 0, 0, false
	}
	rest := len(s) - i
	for _, l := range g.lens {
		if l > rest {
			continue
		}
		if id, ok := g.ids[s[i:i+l]]; ok {
			return id, l, true
		}
	}
	return 0, 0, false
}

// split calls text(seg) for every stretch of s between added tokens and
// tok(id) for every added token, in order. Empty stretches are skipped.
func (m *addedMatcher) split(s string, text func(seg string, first bool), tok func(id int32)) {
	if m.empty() {
		if s != "" {
			text(s, true)
		}
		return
	}
	seg := 0
	for i := 0; i < len(s); {
		id, n, ok := m.at(s, i)
		if !ok {
			i++
			continue
		}
		if i > seg {
			text(s[seg:i], seg == 0)
		}
		tok(id)
		i += n
		seg = i
	}
	if seg < len(s) {
		text(s[seg:], seg == 0)
	}
}
