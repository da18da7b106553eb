package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/stages/prune"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestResumeCorrupt: a work directory left with a truncated or garbled file
// (a killed run, a full disk) is resumed by redoing the step that made the
// file: the warning names the file, the file is removed, and the finished
// model equals an uninterrupted run's. Before, the resume reused the file
// and failed inside the Beam pipeline (or, for a done marker, in Prepare)
// with advice to run again, which failed the same way. A byte flipped
// behind an intact header (bit rot, a bad copy) is caught by the SHA-256
// the done marker records, and redone the same way; a work directory whose
// markers predate checksums still resumes (checked by headers alone). The
// redone model equals the uninterrupted one byte for byte.
func TestResumeCorrupt(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	full := baseConfig(modelDir, corpus, filepath.Join(dir, "full"))
	runPipeline(t, full)

	// A run stopped after two of the three blocks: blocks 0 and 1 are done,
	// the shards entering block 2 are kept.
	stopped, plan := stopAfter(t, full, filepath.Join(dir, "stopped"), filepath.Join(dir, "work"), 2)
	key := filepath.Base(plan.Work.Dir)
	shard := filepath.Base(plan.Done[1].Next[0].Path)

	truncate := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, st.Size()/2)
	}
	garble := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i := 0; i < len(b) && i < 64; i++ {
			b[i] ^= 0x5a
		}
		return os.WriteFile(p, b, 0o644)
	}
	empty := func(p string) error { return os.WriteFile(p, nil, 0o644) }
	checkSums(t, plan.Work.Dir)
	for _, tc := range []struct {
		name    string
		file    string
		corrupt func(string) error
		run     bool // also finish the run and compare with the uninterrupted one
		old     bool // first strip the checksums from every done marker (one written before them)
		reused  int  // blocks the resume reuses; a corrupt file is expected (warned, removed) when 0
	}{
		{name: "truncated block file", file: "block-001.safetensors", corrupt: truncate, run: true},
		{name: "garbled block file", file: "block-000.safetensors", corrupt: garble},
		{name: "empty done marker", file: "block-001.done.json", corrupt: empty},
		{name: "garbled done marker", file: "block-000.done.json", corrupt: garble},
		{name: "truncated shard", file: shard, corrupt: truncate, run: true},
		{name: "garbled shard", file: shard, corrupt: garble},
		// Bytes garbled behind an intact header: only the checksum sees them.
		{name: "flipped byte in a block file", file: "block-001.safetensors", corrupt: flipMiddle(t), run: true},
		{name: "flipped byte in a shard", file: shard, corrupt: flipMiddle(t), run: true},
		// A work directory from before checksums resumes, checked by
		// headers alone, so that the same flipped byte goes unnoticed.
		{name: "old markers", old: true, reused: 2, run: true},
		{name: "old markers, flipped byte in a block file", file: "block-001.safetensors", corrupt: flipMiddle(t), old: true, reused: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stopped
			cfg.Out, cfg.WorkRoot = filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "work")
			copyTree(t, stopped.WorkRoot, cfg.WorkRoot)
			if tc.old {
				stripSums(t, filepath.Join(cfg.WorkRoot, key))
			}
			bad := filepath.Join(cfg.WorkRoot, key, tc.file)
			if tc.corrupt != nil {
				if err := tc.corrupt(bad); err != nil {
					t.Fatal(err)
				}
			}
			var logs syncBuffer
			cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
			plan, err := pipeline.Prepare(&cfg)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if filepath.Base(plan.Work.Dir) != key {
				t.Fatalf("work directory %s, want the stopped run's %s", plan.Work.Dir, key)
			}
			if tc.reused > 0 {
				if len(plan.Done) != tc.reused || strings.Contains(logs.String(), "level=WARN") {
					t.Fatalf("resume reuses %d blocks, want %d without a warning; log:\n%s", len(plan.Done), tc.reused, logs.String())
				}
			} else {
				// Every earlier block's input shards were removed as blocks
				// finished, so a bad file sends the run back to block 0.
				if len(plan.Done) != 0 || len(plan.Windows) == 0 {
					t.Errorf("resume reuses %d blocks (%d window shards), want a fresh start", len(plan.Done), len(plan.Windows))
				}
				if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), bad) {
					t.Errorf("log does not warn about %s:\n%s", bad, logs.String())
				}
				if _, err := os.Stat(bad); err == nil {
					t.Errorf("%s was kept", bad)
				}
				for _, m := range []string{"block-000.done.json", "block-001.done.json"} {
					if _, err := os.Stat(filepath.Join(plan.Work.Dir, m)); err == nil {
						t.Errorf("%s kept, though its block is redone", m)
					}
				}
			}
			if !tc.run {
				return
			}
			runPipeline(t, cfg)
			sameModelFiles(t, full.Out, cfg.Out)
		})
	}
}

// flipMiddle returns a corruption that flips one bit in the middle of a
// block file or shard, behind its header (which the test checks it spares).
func flipMiddle(t *testing.T) func(string) error {
	return func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		hdr := 20 // a shard's header (prune.WriteHidden)
		if strings.HasSuffix(p, ".safetensors") {
			hdr = 8 + int(binary.LittleEndian.Uint64(b))
		}
		mid := len(b) / 2
		if mid < hdr {
			t.Fatalf("%s: the middle byte %d is inside the %d-byte header", p, mid, hdr)
		}
		b[mid] ^= 0x10
		return os.WriteFile(p, b, 0o644)
	}
}

// checkSums checks that every done marker in the work directory dir
// records the SHA-256 of its block file and of the shards it lists that
// still exist, and that it records at least one shard's.
func checkSums(t *testing.T, dir string) {
	t.Helper()
	markers, _ := filepath.Glob(filepath.Join(dir, "block-*.done.json"))
	if len(markers) == 0 {
		t.Fatalf("no done markers in %s", dir)
	}
	shards := 0
	for _, m := range markers {
		var d prune.BlockDone
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if got := fileSHA256(t, filepath.Join(dir, filepath.Base(d.Weights))); d.WeightsSHA256 != got {
			t.Errorf("%s: weights_sha256 %q, the block file's SHA-256 is %s", m, d.WeightsSHA256, got)
		}
		for _, s := range d.Next {
			p := filepath.Join(dir, filepath.Base(s.Path))
			if _, err := os.Stat(p); err != nil {
				continue // removed when the next block finished
			}
			shards++
			if got := fileSHA256(t, p); s.SHA256 != got {
				t.Errorf("%s: shard %d sha256 %q, the file's SHA-256 is %s", m, s.Index, s.SHA256, got)
			}
		}
	}
	if shards == 0 {
		t.Errorf("no done marker in %s lists an existing shard", dir)
	}
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// stripSums rewrites every done marker in dir as one written before
// checksums: without weights_sha256 and next[].sha256, which it fails
// unless they were there.
func stripSums(t *testing.T, dir string) {
	t.Helper()
	markers, _ := filepath.Glob(filepath.Join(dir, "block-*.done.json"))
	for _, m := range markers {
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if _, ok := d["weights_sha256"]; !ok {
			t.Fatalf("%s has no weights_sha256", m)
		}
		delete(d, "weights_sha256")
		next, _ := d["next"].([]any)
		for _, n := range next {
			sh := n.(map[string]any)
			if _, ok := sh["sha256"]; !ok {
				t.Fatalf("%s: a shard has no sha256", m)
			}
			delete(sh, "sha256")
		}
		if raw, err = json.Marshal(d); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameModelFiles checks that the model directories a and b hold the same
// safetensors files, byte for byte.
func sameModelFiles(t *testing.T, a, b string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(a, "*.safetensors"))
	if len(files) == 0 {
		t.Fatalf("no safetensors files in %s", a)
	}
	for _, fa := range files {
		ra, err := os.ReadFile(fa)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := os.ReadFile(filepath.Join(b, filepath.Base(fa)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ra, rb) {
			t.Errorf("%s differs from the uninterrupted run's %s", filepath.Join(b, filepath.Base(fa)), fa)
		}
	}
}

// TestPrepareDryRunKeepsCorrupt: a plan-only Prepare reports a corrupt file
// but removes nothing.
func TestPrepareDryRunKeepsCorrupt(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	cfg, plan := stopAfter(t, baseConfig(modelDir, corpus, ""), filepath.Join(dir, "out"), filepath.Join(dir, "work"), 1)
	bad := filepath.Join(plan.Work.Dir, "block-000.done.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.PlanOnly = true
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Done) != 0 || !strings.Contains(logs.String(), bad) {
		t.Errorf("dry run: %d blocks reused, log %q; want 0 and a warning naming %s", len(plan.Done), logs.String(), bad)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Errorf("a dry run removed %s: %v", bad, err)
	}
}

// TestWorkKeyCoversContents: the work directory is keyed by the contents of
// the model and the corpus as well as by their paths, so that a file
// replaced at the same path does not resume from work made with the old one
// (before, the key was the configuration's JSON, paths only, and the stale
// blocks were reused silently). Rewriting the same bytes still resumes.
func TestWorkKeyCoversContents(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	cfg, first := stopAfter(t, baseConfig(modelDir, corpus, ""), filepath.Join(dir, "out"), filepath.Join(dir, "work"), 1)
	prepare := func(t *testing.T) *pipeline.Plan {
		t.Helper()
		plan, err := pipeline.Prepare(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		return plan
	}
	rewrite := func(t *testing.T, p string, edit func([]byte) []byte) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, edit(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("same bytes rewritten", func(t *testing.T) {
		rewrite(t, corpus, func(b []byte) []byte { return b })
		if plan := prepare(t); plan.Work.Dir != first.Work.Dir || len(plan.Done) != 1 {
			t.Errorf("work %s with %d blocks done, want %s with 1", plan.Work.Dir, len(plan.Done), first.Work.Dir)
		}
	})
	t.Run("corpus changed", func(t *testing.T) {
		// Same size, so that only the contents tell the files apart.
		rewrite(t, corpus, func(b []byte) []byte { return bytes.Replace(b, []byte("the"), []byte("and"), 1) })
		var logs syncBuffer
		cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
		plan := prepare(t)
		cfg.Log = nil
		if plan.Work.Dir == first.Work.Dir || len(plan.Done) != 0 {
			t.Errorf("a changed corpus resumes from %s (%d blocks done)", plan.Work.Dir, len(plan.Done))
		}
		// Starting afresh beside the old work is said, naming it and the
		// input that differs (an input changed, or identified otherwise by
		// an earlier optima: large gs:// inputs before CRC32C).
		if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "dir="+first.Work.Dir) || !strings.Contains(l, "inputs="+corpus) {
			t.Errorf("log %q: want a warning naming %s and %s", l, first.Work.Dir, corpus)
		}
		rewrite(t, corpus, func(b []byte) []byte { return bytes.Replace(b, []byte("and"), []byte("the"), 1) })
	})
	t.Run("model changed", func(t *testing.T) {
		weightsFile := filepath.Join(modelDir, "model.safetensors")
		orig, err := os.ReadFile(weightsFile)
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, weightsFile, func(b []byte) []byte {
			c := bytes.Clone(b)
			c[len(c)-1] ^= 1 // one bit of the last weight
			return c
		})
		plan := prepare(t)
		if plan.Work.Dir == first.Work.Dir || len(plan.Done) != 0 {
			t.Errorf("a changed model resumes from %s (%d blocks done)", plan.Work.Dir, len(plan.Done))
		}
		rewrite(t, weightsFile, func([]byte) []byte { return orig })
	})
	t.Run("restored", func(t *testing.T) {
		if plan := prepare(t); plan.Work.Dir != first.Work.Dir || len(plan.Done) != 1 {
			t.Errorf("work %s with %d blocks done, want %s with 1", plan.Work.Dir, len(plan.Done), first.Work.Dir)
		}
	})
}

// TestRemoveWork: after a finished run the work directory is removed with
// a log line, and the work root with it when nothing else is left; a
// directory that is not an optima work directory, or that holds a file
// optima did not write, is left whole with a warning.
func TestRemoveWork(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	cfg := baseConfig(modelDir, corpus, filepath.Join(dir, "out"))
	cfg.WorkRoot, cfg.StopAfter = filepath.Join(dir, "work"), 2
	runPipeline(t, cfg)
	cfg.StopAfter = 0
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A temporary file of a killed write is part of the work directory.
	if err := os.WriteFile(filepath.Join(plan.Work.Dir, ".block-002.safetensors.tmp-123456"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	template := filepath.Join(dir, "template")
	copyTree(t, cfg.WorkRoot, template)
	key := filepath.Base(plan.Work.Dir)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, root string) string // returns the directory to remove
		removed  bool
		rootGone bool
		log      string
	}{
		{"work directory", func(t *testing.T, root string) string { return filepath.Join(root, key) }, true, true, "removed work directory"},
		{"other work directory in the root", func(t *testing.T, root string) string {
			copyTree(t, filepath.Join(root, key), filepath.Join(root, "0123456789abcdef"))
			return filepath.Join(root, key)
		}, true, false, "0123456789abcdef"},
		{"foreign file", func(t *testing.T, root string) string {
			if err := os.WriteFile(filepath.Join(root, key, "notes.txt"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, key)
		}, false, false, "notes.txt"},
		{"foreign directory", func(t *testing.T, root string) string {
			if err := os.Mkdir(filepath.Join(root, key, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, key)
		}, false, false, "data"},
		{"not a work directory name", func(t *testing.T, root string) string {
			p := filepath.Join(root, "mydata")
			if err := os.Rename(filepath.Join(root, key), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, false, false, "not an optima work directory"},
		{"no config.json", func(t *testing.T, root string) string {
			if err := os.Remove(filepath.Join(root, key, "config.json")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, key)
		}, false, false, "not an optima work directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "work")
			copyTree(t, template, root)
			target := tc.setup(t, root)
			before := listTree(t, root)
			var logs syncBuffer
			if err := pipeline.RemoveWork(context.Background(), prune.Work{Dir: target}, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatalf("RemoveWork: %v", err)
			}
			_, err := os.Stat(target)
			if gone := os.IsNotExist(err); gone != tc.removed {
				t.Errorf("%s removed: %v, want %v", target, gone, tc.removed)
			}
			if !tc.removed {
				if diff := cmp.Diff(before, listTree(t, root)); diff != "" {
					t.Errorf("files changed (-before +after):\n%s", diff)
				}
			}
			_, err = os.Stat(root)
			if gone := os.IsNotExist(err); gone != tc.rootGone {
				t.Errorf("work root removed: %v, want %v", gone, tc.rootGone)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log does not mention %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// TestPrepareRemovesStaleTemps: the hidden temporary directories that a
// killed model write leaves beside --out (".OUT.tmp-N", and ".OUT.old-N"
// once OUT exists again) are removed by the next run with a log line; newer
// ones (another run writing now), other names and plain files are kept.
func TestPrepareRemovesStaleTemps(t *testing.T) {
	modelDir, corpus := fixture(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "pruned")
	old := time.Now().Add(-time.Hour)
	mk := func(name string, dir, stale bool) string {
		p := filepath.Join(parent, name)
		var err error
		if dir {
			if err = os.Mkdir(p, 0o755); err == nil {
				err = os.WriteFile(filepath.Join(p, "model.safetensors"), []byte("partial"), 0o644)
			}
		} else {
			err = os.WriteFile(p, []byte("x"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		if stale {
			for _, q := range []string{filepath.Join(p, "model.safetensors"), p} {
				if err := os.Chtimes(q, old, old); err != nil && dir {
					t.Fatal(err)
				}
			}
		}
		return p
	}
	removed := []string{mk(".pruned.tmp-123456", true, true), mk(".pruned.tmp-9", true, true)}
	kept := []string{
		mk(".pruned.tmp-777", true, false),  // being written now
		mk(".pruned.tmp-12ab", true, true),  // not os.MkdirTemp's digits
		mk(".pruned2.tmp-1234", true, true), // another output
		mk(".prune.tmp-1234", true, true),   // another output
		mk("pruned.tmp-1234", true, true),   // not hidden
		mk(".pruned.tmp-55", false, true),   // a file
		mk(".pruned.old-42", true, true),    // OUT is absent: the previous model, kept
	}
	cfg := baseConfig(modelDir, corpus, out)
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	dry := cfg
	dry.PlanOnly = true
	if _, err := pipeline.Prepare(&dry); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(removed, kept...) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a dry run removed %s", p)
		}
	}
	if _, err := pipeline.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range removed {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale %s kept (%v)", p, err)
		}
		if !strings.Contains(logs.String(), p) {
			t.Errorf("log does not name %s:\n%s", p, logs.String())
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}

	// With OUT present again, a stale ".OUT.old-N" is the leftover of a
	// finished swap.
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(parent, ".pruned.old-42")); !os.IsNotExist(err) {
		t.Errorf("stale .pruned.old-42 kept beside an existing output (%v)", err)
	}
}

// TestWorkGCS: on a gs:// work root, a corrupt block file is redone with a
// warning and removed, and RemoveWork removes an optima work directory but
// leaves one holding a foreign object whole (GCS emulator).
func TestWorkGCS(t *testing.T) {
	modelDir, corpus := fixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	cfg := baseConfig(modelDir, corpus, filepath.Join(t.TempDir(), "out"))
	cfg.WorkRoot, cfg.StopAfter = "gs://bkt/work", 2
	runPipeline(t, cfg)
	cfg.StopAfter = 0
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Done) != 2 {
		t.Fatalf("%d blocks done on gs://, want 2", len(plan.Done))
	}
	bad := plan.Work.BlockPath(1)
	raw, err := fileio.ReadFile(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := fileio.WriteFile(ctx, bad, raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	if plan, err = pipeline.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(plan.Done) != 0 || !strings.Contains(logs.String(), bad) {
		t.Errorf("%d blocks reused, log %q; want 0 and a warning naming %s", len(plan.Done), logs.String(), bad)
	}
	if ok, err := fileio.Exists(ctx, bad); err != nil || ok {
		t.Errorf("corrupt %s kept (%v)", bad, err)
	}

	foreign := fileio.Join(plan.Work.Dir, "notes.txt")
	if err := fileio.WriteFile(ctx, foreign, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.RemoveWork(ctx, plan.Work, cfg.Log); err != nil {
		t.Fatal(err)
	}
	if ok, err := fileio.Exists(ctx, foreign); err != nil || !ok {
		t.Fatalf("RemoveWork removed a work directory holding %s (%v)", foreign, err)
	}
	if err := fileio.Remove(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.RemoveWork(ctx, plan.Work, cfg.Log); err != nil {
		t.Fatal(err)
	}
	if left, err := fileio.Glob(ctx, plan.Work.Dir+"/**"); err != nil || len(left) != 0 {
		t.Errorf("objects left under %s: %v (%v)", plan.Work.Dir, left, err)
	}
}

// TestResumeChecksumGCS: on a gs:// work root, the done markers record the
// SHA-256 of the objects written, and a byte flipped in the middle of a
// block file or a shard is found by it (read back in ranged GETs), warned
// about, removed and redone, the model equal byte for byte to an
// uninterrupted run's (GCS emulator).
func TestResumeChecksumGCS(t *testing.T) {
	modelDir, corpus := fixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	dir := t.TempDir()
	full := baseConfig(modelDir, corpus, filepath.Join(dir, "full"))
	runPipeline(t, full)
	stopped, plan := stopAfter(t, full, filepath.Join(dir, "stopped"), "gs://bkt/stopped", 2)
	key := fileio.Base(plan.Work.Dir)
	objects, err := fileio.Glob(ctx, plan.Work.Dir+"/*")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(p string) string {
		b, err := fileio.ReadFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	last := plan.Done[1]
	if got := sum(last.Weights); last.WeightsSHA256 != got {
		t.Errorf("block 1 records weights_sha256 %q, the object's SHA-256 is %s", last.WeightsSHA256, got)
	}
	if got := sum(last.Next[0].Path); last.Next[0].SHA256 != got {
		t.Errorf("block 1 records shard 0's sha256 %q, the object's SHA-256 is %s", last.Next[0].SHA256, got)
	}

	for i, file := range []string{"block-001.safetensors", fileio.Base(last.Next[0].Path)} {
		t.Run(file, func(t *testing.T) {
			cfg := stopped
			cfg.Out, cfg.WorkRoot = filepath.Join(t.TempDir(), "out"), fmt.Sprintf("gs://bkt/case%d", i)
			for _, o := range objects {
				b, err := fileio.ReadFile(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				if fileio.Base(o) == file {
					local := filepath.Join(t.TempDir(), file)
					if err := os.WriteFile(local, b, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := flipMiddle(t)(local); err != nil {
						t.Fatal(err)
					}
					if b, err = os.ReadFile(local); err != nil {
						t.Fatal(err)
					}
				}
				if err := fileio.WriteFile(ctx, fileio.Join(cfg.WorkRoot, key, fileio.Base(o)), b); err != nil {
					t.Fatal(err)
				}
			}
			bad := fileio.Join(cfg.WorkRoot, key, file)
			var logs syncBuffer
			cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
			plan, err := pipeline.Prepare(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Done) != 0 || !strings.Contains(logs.String(), "checksum mismatch") || !strings.Contains(logs.String(), bad) {
				t.Errorf("%d blocks reused, log %q; want 0 and a checksum warning naming %s", len(plan.Done), logs.String(), bad)
			}
			if ok, err := fileio.Exists(ctx, bad); err != nil || ok {
				t.Errorf("corrupt %s kept (%v)", bad, err)
			}
			runPipeline(t, cfg)
			sameModelFiles(t, full.Out, cfg.Out)
		})
	}
}

// stopAfter runs full with out and workRoot stopped after n of its three
// blocks, and returns that configuration without the stop (the command
// that resumes it) with its plan: blocks 0 to n−1 done, the shards entering
// block n kept.
func stopAfter(t *testing.T, full pipeline.Config, out, workRoot string, n int) (pipeline.Config, *pipeline.Plan) {
	t.Helper()
	stopped := full
	stopped.Out, stopped.WorkRoot, stopped.StopAfter = out, workRoot, n
	runPipeline(t, stopped)
	stopped.StopAfter = 0
	plan, err := pipeline.Prepare(&stopped)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Done) != n || len(plan.Done[n-1].Next) == 0 {
		t.Fatalf("the stopped run left %d finished blocks, want %d with shards after them", len(plan.Done), n)
	}
	return stopped, plan
}
