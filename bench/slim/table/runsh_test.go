package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeOptima stands in for the optima binary in TestRunSh: prune makes
// --out with a report.json and logs "prune"; eval logs "eval" to $FAKE_LOG
// and prints a perplexity, or a partial output and fails when $FAKE_FAIL is
// set.
const fakeOptima = `#!/usr/bin/env bash
cmd=$1; shift
out=
while [ $# -gt 0 ]; do
  case $1 in --out) out=$2; shift ;; esac
  shift
done
echo "$cmd" >> "$FAKE_LOG"
if [ "$cmd" = prune ]; then
  if [ "${FAKE_FAIL:-}" = prune ]; then echo "optima: --calib: bad corpus" >&2; exit 1; fi
  mkdir -p "$out" && echo '{"totals": {}}' > "$out/report.json"
  exit 0
fi
if [ -n "${FAKE_FAIL:-}" ]; then echo '{"perpl'; echo "optima: eval: boom" >&2; exit 1; fi
printf '{\n  "perplexity": 7.389,\n  "window_nll": [2, 2]\n}\n'
`

// TestRunSh runs bench/slim/run.sh with fakeOptima: a failed eval keeps the
// row's previous ROW.eval.json and leaves no temporary file; an unknown row
// stops the run before any work.
func TestRunSh(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs(filepath.Join("..", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	const old = `{"perplexity": 5, "window_nll": [1]}`
	for _, tc := range []struct {
		name  string
		env   []string
		rows  []string
		fail  bool
		calls string
		// evals are the rows whose ROW.eval.json must hold the fake's new
		// result; the others must hold old.
		evals []string
		// output must be in run.sh's output.
		output []string
	}{
		{"success", nil, []string{"dense", "optima-slim"}, false, "eval prune eval", []string{"dense", "optima-slim"}, nil},
		{"dense eval fails", []string{"FAKE_FAIL=1"}, []string{"dense"}, true, "eval", nil, []string{"dense: eval failed", "dense.eval.log", "optima: eval: boom"}},
		{"row eval fails", []string{"FAKE_FAIL=1"}, []string{"optima-slim"}, true, "prune eval", nil, []string{"optima-slim: eval failed", "optima-slim.eval.log", "optima: eval: boom"}},
		{"prune fails", []string{"FAKE_FAIL=prune"}, []string{"optima-slim"}, true, "prune", nil, []string{"optima-slim: prune failed", "optima-slim.prune.log", "optima: --calib: bad corpus"}},
		{"unknown row", nil, []string{"dense", "optima-slimm"}, true, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "optima")
			if err := os.WriteFile(fake, []byte(fakeOptima), 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, out, map[string]string{"dense.eval.json": old, "optima-slim.eval.json": old})
			log := filepath.Join(dir, "log")
			cmd := exec.Command("bash", append([]string{script, fake, "model.gguf", "data", out, "1", "32", "2"}, tc.rows...)...)
			cmd.Env = append(append(os.Environ(), "FAKE_LOG="+log, "FAKE_FAIL="), tc.env...)
			b, err := cmd.CombinedOutput()
			if (err != nil) != tc.fail {
				t.Fatalf("run.sh: error %v, want failure %v\n%s", err, tc.fail, b)
			}
			for _, w := range tc.output {
				if !strings.Contains(string(b), w) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			raw, _ := os.ReadFile(log)
			if got := strings.Join(strings.Fields(string(raw)), " "); got != tc.calls {
				t.Errorf("calls %q, want %q\n%s", got, tc.calls, b)
			}
			for _, row := range []string{"dense", "optima-slim"} {
				got, err := os.ReadFile(filepath.Join(out, row+".eval.json"))
				if err != nil {
					t.Fatal(err)
				}
				isNew := strings.Contains(string(got), "7.389")
				want := false
				for _, r := range tc.evals {
					want = want || r == row
				}
				if isNew != want || (!isNew && string(got) != old) {
					t.Errorf("%s.eval.json = %q, want the new result: %v", row, got, want)
				}
			}
			ents, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("%s left behind", e.Name())
				}
			}
		})
	}
}
