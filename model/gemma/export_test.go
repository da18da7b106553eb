package gemma

// Test helpers shared with the external tests (package gemma_test).
var (
	WriteFixtureGGUF = writeFixtureGGUF
	Gemma3GGUFMeta   = gemma3GGUFMeta
)
