package runners_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/runners"
)

// TestLoopbackTempFile: Beam's runnerlib.Execute (v2.77.0) creates an empty
// $TMPDIR/beamloopbackworker-* for every loopback run and never removes it
// (apache/beam#27569's TODO). A local run through runners.Execute leaves
// none behind, twice in a row, and leaves another process's
// beamloopbackworker file and every other file of $TMPDIR alone.
func TestLoopbackTempFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	foreign := filepath.Join(tmp, "beamloopbackworker-123456")
	other := filepath.Join(tmp, "unrelated.txt")
	for _, f := range []string{foreign, other} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []string {
		var names []string
		err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != tmp {
				rel, _ := filepath.Rel(tmp, p)
				names = append(names, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}
	before := list()
	for run := range 2 {
		p, s := beam.NewPipelineWithRoot()
		passert.Count(s, beam.Create(s, 1, 2, 3), "three", 3)
		if _, err := runners.Execute(context.Background(), runners.Config{Runner: runners.Local}, p); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if diff := cmp.Diff(before, list()); diff != "" {
			t.Errorf("run %d: $TMPDIR before and after (-before +after):\n%s", run, diff)
		}
		if got := os.Getenv("TMPDIR"); got != tmp {
			t.Errorf("run %d: $TMPDIR is %q after the run, want %q", run, got, tmp)
		}
	}
}
