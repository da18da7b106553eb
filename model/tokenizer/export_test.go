package tokenizer

// ResetCache empties the per-piece cache (for cold-cache benchmarks).
func (t *BPE) ResetCache() {
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
}
