package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneResumeCorrupt: a work directory whose block file was cut short
// (a killed run, a full disk) is resumed by redoing the block, with a
// warning naming the file; the model equals an uninterrupted run's. Before,
// the rerun failed inside the Beam pipeline with a stack trace and advice to
// run the same command again, which failed the same way.
func TestPruneResumeCorrupt(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	fullOut := filepath.Join(dir, "full")
	mustOptima(t, f.pruneArgs(fullOut)...)

	out, work := filepath.Join(dir, "out"), filepath.Join(dir, "work")
	args := f.pruneArgs(out, "--work-dir", work)
	mustOptima(t, append(args, "--stop-after-blocks", "1")...)
	blocks, err := filepath.Glob(filepath.Join(work, "*", "block-000.safetensors"))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("block file of the stopped run: %v %v", blocks, err)
	}
	st, err := os.Stat(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blocks[0], st.Size()-7); err != nil {
		t.Fatal(err)
	}
	_, stderr := mustOptima(t, args...)
	t.Logf("stderr of the resumed run:\n%s", stderr)
	for _, w := range []string{"warning", "corrupt", blocks[0]} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, stderr)
		}
	}
	if err := sameBits(weights(t, fullOut), weights(t, out)); err != nil {
		t.Errorf("redone run differs from the uninterrupted one: %v", err)
	}
}

// TestPruneKeepWork: a finished prune removes its work directory and says
// so; --keep-work keeps it and says where.
func TestPruneKeepWork(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		keep bool
		log  string
	}{
		{"default", false, "removed work directory"},
		{"keep-work", true, "kept work directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, work := filepath.Join(dir, tc.name), filepath.Join(dir, tc.name+"-work")
			args := f.pruneArgs(out, "--work-dir", work)
			if tc.keep {
				args = append(args, "--keep-work")
			}
			_, stderr := mustOptima(t, args...)
			kept, err := filepath.Glob(filepath.Join(work, "*", "block-001.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if (len(kept) == 1) != tc.keep {
				t.Errorf("work directory kept: %v, want %v", kept, tc.keep)
			}
			if _, err := os.Stat(work); os.IsNotExist(err) == tc.keep {
				t.Errorf("work root %s removed: %v, want %v", work, os.IsNotExist(err), !tc.keep)
			}
			if !strings.Contains(stderr, tc.log) {
				t.Errorf("stderr does not mention %q:\n%s", tc.log, stderr)
			}
		})
	}
}

// TestWarnFewTokens: a run whose calibration has fewer tokens than the
// widest linear has inputs (the tiny model's down_proj: 128) warns that the
// Hessian is rank-deficient when it uses the Hessian, and not for Wanda
// without an update or with enough tokens.
func TestWarnFewTokens(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		extra []string
		warn  bool
	}{
		{"64 tokens, optima", []string{"--nsamples", "2"}, true},
		{"64 tokens, wanda alone", []string{"--nsamples", "2", "--update", "none"}, false},
		{"128 tokens, optima", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr := mustOptima(t, f.pruneArgs(filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")), tc.extra...)...)
			got := strings.Contains(stderr, "fewer tokens than the widest linear")
			if got != tc.warn {
				t.Errorf("warning %v, want %v; stderr:\n%s", got, tc.warn, stderr)
			}
			if got && !strings.Contains(stderr, "inputs=128") {
				t.Errorf("the warning does not give the inputs: %s", stderr)
			}
		})
	}
}
