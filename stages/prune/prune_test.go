package prune

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/solve"
)

func TestRowBatches(t *testing.T) {
	for _, tc := range []struct {
		out, in, batch int
		want           [][2]int
	}{
		{5, 4, 0, [][2]int{{0, 5}}},
		{5, 4, 2, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		{3, 4, 10, [][2]int{{0, 3}}},
		// 16 MiB cap: 4·in bytes a row.
		{3000, RowBatchBytes / 4 / 1000, 0, [][2]int{{0, 1000}, {1000, 2000}, {2000, 3000}}},
	} {
		c := Config{RowBatch: tc.batch}
		if d := cmp.Diff(tc.want, c.RowBatches(tc.out, tc.in)); d != "" {
			t.Errorf("RowBatches(%d, %d) with batch %d (-want +got):\n%s", tc.out, tc.in, tc.batch, d)
		}
	}
}

func TestBlockOf(t *testing.T) {
	for name, want := range map[string]int{
		"model.layers.3.mlp.down_proj":     3,
		"model.layers.27.self_attn.q_proj": 27,
		"model.embed_tokens":               -1,
		"model.layers.x.mlp":               -1,
		"lm_head":                          -1,
	} {
		if got := BlockOf(name); got != want {
			t.Errorf("BlockOf(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Model: "m", Calib: "c", Method: "wanda", Sparsity: 0.5, Update: UpdateOptima, NSamples: 4, SeqLen: 8, Shards: 2, Solve: solve.DefaultOptions()}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Model = "" }, "--model"},
		{func(c *Config) { c.Calib = "" }, "--calib"},
		{func(c *Config) { c.Method = "sparsegpt-x" }, "--method"},
		{func(c *Config) { c.Sparsity = 1 }, "sparsity"},
		{func(c *Config) { c.Sparsity = -0.1 }, "sparsity"},
		{func(c *Config) { c.Pattern = "3:2" }, "pattern"},
		{func(c *Config) { c.Update = "own" }, "--update"},
		{func(c *Config) { c.NSamples = 0 }, "--nsamples"},
		{func(c *Config) { c.SeqLen = 1 }, "--seqlen"},
		{func(c *Config) { c.ForwardDevice = "tpu" }, "--forward-device"},
		{func(c *Config) { c.Shards = 0 }, "--shards"},
		{func(c *Config) { c.Shards = 5 }, "--shards"},
		{func(c *Config) { c.RowBatch = -1 }, "--row-batch"},
		{func(c *Config) { c.Solve.Damping = -1 }, "--damping"},
		{func(c *Config) { c.Solve.Damping = math.NaN() }, "--damping"},
		{func(c *Config) { c.Solve.Damping = math.Inf(1) }, "--damping"},
		{func(c *Config) { c.Solve.Tol = -1 }, "--cg-tol"},
		{func(c *Config) { c.Solve.Tol = math.NaN() }, "--cg-tol"},
		{func(c *Config) { c.Solve.Tol = math.Inf(1) }, "--cg-tol"},
		{func(c *Config) { c.Solve.MaxIter = -1 }, "--cg-max-iter"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want an error naming %s", err, tc.want)
		}
	}
}

func TestHashDependsOnResultFields(t *testing.T) {
	a := Config{Model: "m", Method: "wanda", Sparsity: 0.5, Seed: 1}
	b := a
	b.Seed = 2
	if a.Hash() == b.Hash() {
		t.Error("configurations with different seeds share a work directory")
	}
	if a.Hash() != a.Hash() {
		t.Error("hash is not deterministic")
	}
}

func TestHiddenRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "h.bin")
	x := []float32{1, -2, 3.5, 0, 5, 6}
	if err := WriteHidden(p, x, 1, 3, 2); err != nil {
		t.Fatal(err)
	}
	got, nseq, seqlen, hidden, err := ReadHidden(p)
	if err != nil || nseq != 1 || seqlen != 3 || hidden != 2 || !cmp.Equal(got, x) {
		t.Fatalf("round trip: %v %d %d %d %v", got, nseq, seqlen, hidden, err)
	}
	raw, _ := os.ReadFile(p)
	for name, data := range map[string][]byte{
		"truncated": raw[:len(raw)-1],
		"magic":     append([]byte("NOTMAGIC"), raw[8:]...),
		"empty":     nil,
	} {
		bad := filepath.Join(dir, name)
		os.WriteFile(bad, data, 0o644)
		if _, _, _, _, err := ReadHidden(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestLinearAccumulator(t *testing.T) {
	a := NewLinearAccumulator(model.Linear{Name: "l", Group: "g", Out: 4, In: 10})
	a.Add(BatchResult{Pruned: 10, Stats: solve.Stats{Rows: 2, Iterations: 5, FallbackRows: 1, ObjBefore: 2, ObjAfter: 1, Denom: 10, Damping: 0.01}}, 1)
	a.Add(BatchResult{Pruned: 10, Stats: solve.Stats{Rows: 2, Iterations: 7, ObjBefore: 4, ObjAfter: 1, Denom: 10, Damping: 0.1}}, 2)
	r := a.Report()
	if r.Sparsity != 0.5 || r.ErrBefore != 0.3 || r.ErrAfter != 0.1 || r.CGIterations != 7 || r.FallbackRows != 1 || r.Seconds != 3 || r.Damping != 0.1 {
		t.Errorf("report %+v", r)
	}
}
