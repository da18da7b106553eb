package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeOptima stands in for the optima binary in TestRunSh: prune makes
// --out with a report.json; eval logs "eval TASK LIMIT" to $FAKE_LOG and
// prints what optima eval --json prints (perplexity for wikitext2, else
// the tasks, with zeroshot expanded) and writes {"task": "TASK"} to the
// --log-samples path when one is given, or fails with a partial output when
// TASK is $FAKE_FAIL. An empty, unknown or repeated task fails as optima's
// --task does.
const fakeOptima = `#!/usr/bin/env bash
cmd=$1; shift
task= limit=0 out= samples=
while [ $# -gt 0 ]; do
  case $1 in
    --task) task=$2; shift ;;
    --limit) limit=$2; shift ;;
    --out) out=$2; shift ;;
    --log-samples) samples=$2; shift ;;
  esac
  shift
done
if [ "$cmd" = prune ]; then
  if [ "${FAKE_FAIL:-}" = prune ]; then echo "optima: --calib: bad corpus" >&2; exit 1; fi
  mkdir -p "$out" && echo '{"totals": {"sparsity": 0.5}}' > "$out/report.json"
  exit 0
fi
echo "eval $task $limit" >> "$FAKE_LOG"
if [ "$task" = "${FAKE_FAIL:-}" ]; then echo '{"perpl'; exit 1; fi
if [ "$task" = wikitext2 ]; then printf '{\n  "perplexity": 7.389,\n  "windows": 2,\n  "window_nll": [2, 2]\n}\n'; exit 0; fi
list=$(echo ",$task," | sed 's/,zeroshot,/,piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu,/; s/^,//; s/,$//')
printf '{"tasks": ['
sep= seen=,
for t in ${list//,/ } ""; do
  [ -n "$t" ] || { [ "$sep" ] && break; echo "optima: --task $task: unknown task \"\"" >&2; exit 1; }
  case $seen in *,$t,*) echo "optima: --task $task: task $t given twice" >&2; exit 1 ;; esac
  seen=$seen$t,
  printf '%s{"task": "%s", "items": 4, "acc": 0.5}' "$sep" "$t"; sep=,
done
printf '],\n  "average_acc": 0.5,\n  "limit": %s\n}\n' "$limit"
if [ -n "$samples" ]; then echo "{\"task\": \"$task\"}" > "$samples"; fi
`

// TestRunSh runs bench/smollm2/run.sh with fakeOptima: which evals it
// starts, which files it leaves, and that the table loads them.
func TestRunSh(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs(filepath.Join("..", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		rows []string
		// before are files in OUT before the run (name → content).
		before map[string]string
		fail   bool
		// evals are the eval calls, "eval TASK LIMIT".
		evals []string
		// tasks are the zero-shot tasks loadZeroShot merges for dense (nil:
		// no zero-shot file).
		tasks []string
		// after are files whose content must be as given after the run.
		after map[string]string
		// gone are files that must not exist after the run.
		gone []string
		// output must be in run.sh's output.
		output []string
	}{
		{
			name:  "zeroshot alias with an MMLU limit scores MMLU once",
			env:   []string{"ZEROSHOT_TASKS=zeroshot", "ZEROSHOT_LIMIT=5", "ZEROSHOT_MMLU_LIMIT=3"},
			rows:  []string{"dense"},
			evals: []string{"eval wikitext2 0", "eval mmlu 3", "eval piqa,arc_easy,arc_challenge,winogrande,openbookqa 5"},
			tasks: []string{"piqa", "arc_easy", "arc_challenge", "winogrande", "openbookqa", "mmlu"},
		},
		{
			name:  "mmlu alone with an MMLU limit",
			env:   []string{"ZEROSHOT_TASKS=mmlu", "ZEROSHOT_MMLU_LIMIT=3"},
			rows:  []string{"dense"},
			evals: []string{"eval wikitext2 0", "eval mmlu 3"},
			tasks: []string{"mmlu"},
			gone:  []string{"dense.zeroshot.json"},
		},
		{
			name:   "a rerun without the MMLU limit drops the old MMLU file",
			env:    []string{"ZEROSHOT_TASKS=piqa"},
			rows:   []string{"dense"},
			before: map[string]string{"dense.zeroshot-mmlu.json": `{"tasks": [{"task": "mmlu", "acc": 0.9}], "limit": 10}`},
			evals:  []string{"eval wikitext2 0", "eval piqa 0"},
			tasks:  []string{"piqa"},
			gone:   []string{"dense.zeroshot-mmlu.json"},
		},
		{
			name:  "per-document samples are kept beside the JSON files",
			env:   []string{"ZEROSHOT_TASKS=piqa,mmlu", "ZEROSHOT_MMLU_LIMIT=3", "ZEROSHOT_SAMPLES=1"},
			rows:  []string{"dense"},
			evals: []string{"eval wikitext2 0", "eval mmlu 3", "eval piqa 0"},
			tasks: []string{"piqa", "mmlu"},
			after: map[string]string{
				"dense.zeroshot.samples.jsonl.gz":      `{"task": "piqa"}`,
				"dense.zeroshot-mmlu.samples.jsonl.gz": `{"task": "mmlu"}`,
			},
			gone: []string{"dense.zeroshot.samples.tmp.jsonl.gz", "dense.zeroshot-mmlu.samples.tmp.jsonl.gz"},
		},
		{
			name:   "a rerun without samples drops the old samples",
			env:    []string{"ZEROSHOT_TASKS=piqa"},
			rows:   []string{"dense"},
			before: map[string]string{"dense.zeroshot.samples.jsonl.gz": `{"task": "old"}`},
			evals:  []string{"eval wikitext2 0", "eval piqa 0"},
			tasks:  []string{"piqa"},
			gone:   []string{"dense.zeroshot.samples.jsonl.gz"},
		},
		{
			name:   "a failed zero-shot eval keeps the previous samples",
			env:    []string{"ZEROSHOT_TASKS=piqa", "ZEROSHOT_SAMPLES=1", "FAKE_FAIL=piqa"},
			rows:   []string{"dense"},
			before: map[string]string{"dense.zeroshot.samples.jsonl.gz": `{"task": "old"}`},
			fail:   true,
			evals:  []string{"eval wikitext2 0", "eval piqa 0"},
			after:  map[string]string{"dense.zeroshot.samples.jsonl.gz": `{"task": "old"}`},
			gone:   []string{"dense.zeroshot.samples.tmp.jsonl.gz"},
		},
		{
			// MMLU's eval succeeds and writes its samples under the
			// temporary name; the next eval fails: that file must go, and
			// both old samples files stay.
			name: "a failed zero-shot eval after MMLU's removes MMLU's new samples",
			env:  []string{"ZEROSHOT_TASKS=piqa,mmlu", "ZEROSHOT_MMLU_LIMIT=3", "ZEROSHOT_SAMPLES=1", "FAKE_FAIL=piqa"},
			rows: []string{"dense"},
			before: map[string]string{
				"dense.zeroshot.samples.jsonl.gz":      `{"task": "old"}`,
				"dense.zeroshot-mmlu.samples.jsonl.gz": `{"task": "old mmlu"}`,
			},
			fail:  true,
			evals: []string{"eval wikitext2 0", "eval mmlu 3", "eval piqa 0"},
			after: map[string]string{
				"dense.zeroshot.samples.jsonl.gz":      `{"task": "old"}`,
				"dense.zeroshot-mmlu.samples.jsonl.gz": `{"task": "old mmlu"}`,
			},
			gone: []string{"dense.zeroshot-mmlu.samples.tmp.jsonl.gz", "dense.zeroshot-mmlu.json.tmp", "dense.zeroshot.samples.tmp.jsonl.gz"},
		},
		{
			name:   "a failed eval keeps the previous result",
			env:    []string{"FAKE_FAIL=wikitext2"},
			rows:   []string{"dense"},
			before: map[string]string{"dense.eval.json": `{"window_nll": [1, 1]}`},
			fail:   true,
			evals:  []string{"eval wikitext2 0"},
			after:  map[string]string{"dense.eval.json": `{"window_nll": [1, 1]}`},
			gone:   []string{"dense.eval.json.tmp"},
		},
		{
			name:   "a failed zero-shot eval keeps the previous result",
			env:    []string{"ZEROSHOT_TASKS=piqa", "FAKE_FAIL=piqa"},
			rows:   []string{"dense"},
			before: map[string]string{"dense.zeroshot.json": `{"tasks": [{"task": "piqa", "acc": 0.9}]}`},
			fail:   true,
			evals:  []string{"eval wikitext2 0", "eval piqa 0"},
			after:  map[string]string{"dense.zeroshot.json": `{"tasks": [{"task": "piqa", "acc": 0.9}]}`},
			gone:   []string{"dense.zeroshot.json.tmp"},
		},
		{
			name: "a re-pruned row without zero-shot drops the old model's zero-shot files",
			rows: []string{"wanda50-none"},
			before: map[string]string{
				"wanda50-none.zeroshot.json":      `{"tasks": [{"task": "piqa", "acc": 0.9}]}`,
				"wanda50-none.zeroshot-mmlu.json": `{"tasks": [{"task": "mmlu", "acc": 0.9}]}`,
			},
			evals: []string{"eval wikitext2 0"},
			gone:  []string{"wanda50-none.zeroshot.json", "wanda50-none.zeroshot-mmlu.json"},
		},
		{
			name:   "a failed prune says why and where its log is",
			env:    []string{"FAKE_FAIL=prune"},
			rows:   []string{"wanda50-none"},
			fail:   true,
			output: []string{"wanda50-none: prune failed", "wanda50-none.prune.log", "optima: --calib: bad corpus"},
		},
		{
			name: "an unknown row stops the run before any work",
			rows: []string{"dense", "wanda51-optima"},
			fail: true,
			gone: []string{"dense.eval.json"},
		},
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
			for name, s := range tc.before {
				if err := os.WriteFile(filepath.Join(out, name), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			log := filepath.Join(dir, "log")
			cmd := exec.Command("bash", append([]string{script, fake, "model.gguf", "data", out, "1", "2"}, tc.rows...)...)
			cmd.Env = append(append(os.Environ(), "FAKE_LOG="+log, "ZEROSHOT_TASKS=", "ZEROSHOT_LIMIT=", "ZEROSHOT_MMLU_LIMIT=", "ZEROSHOT_SAMPLES=", "FAKE_FAIL="), tc.env...)
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
			var evals []string
			if s := strings.TrimSpace(string(raw)); s != "" {
				evals = strings.Split(s, "\n")
			}
			if diff := cmp.Diff(tc.evals, evals); diff != "" {
				t.Errorf("eval calls (-want +got):\n%s\noutput:\n%s", diff, b)
			}
			for name, want := range tc.after {
				got, err := os.ReadFile(filepath.Join(out, name))
				if err != nil || strings.TrimSpace(string(got)) != want {
					t.Errorf("%s: %q (%v), want %q", name, got, err, want)
				}
			}
			for _, name := range tc.gone {
				if _, err := os.Stat(filepath.Join(out, name)); err == nil {
					t.Errorf("%s exists after the run", name)
				}
			}
			if tc.fail {
				return
			}
			z, err := loadZeroShot(out, "dense")
			if err != nil {
				t.Fatal(err)
			}
			var tasks []string
			if z != nil {
				tasks = z.Tasks
			}
			if diff := cmp.Diff(tc.tasks, tasks); diff != "" {
				t.Errorf("zero-shot tasks the table reads (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBlock0Sh runs bench/smollm2/block0.sh with fakeOptima: each run's
// block-0 done marker is copied, and a failed prune says which run failed
// and shows the end of its log instead of ending silently.
func TestBlock0Sh(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs(filepath.Join("..", "block0.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// The fake's prune also leaves OUT.work/HASH/block-000.done.json.
	fake := strings.Replace(fakeOptima, `mkdir -p "$out" && echo`,
		`mkdir -p "$out.work/abc" && echo '{"block": 0}' > "$out.work/abc/block-000.done.json" && mkdir -p "$out" && echo`, 1)
	for _, tc := range []struct {
		name   string
		env    []string
		fail   bool
		output []string
	}{
		{"success", nil, false, []string{"admm-optima-0.0001 done"}},
		{"prune fails", []string{"FAKE_FAIL=prune"}, true, []string{"sparsegpt-own-0.01: prune failed", "sparsegpt-own-0.01.log", "optima: --calib: bad corpus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "optima")
			if err := os.WriteFile(bin, []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			cmd := exec.Command("bash", script, bin, "model.gguf", "data", out, "1", "--sparsity", "0.5")
			cmd.Env = append(append(os.Environ(), "FAKE_LOG="+filepath.Join(dir, "log"), "FAKE_FAIL="), tc.env...)
			b, err := cmd.CombinedOutput()
			if (err != nil) != tc.fail {
				t.Fatalf("block0.sh: error %v, want failure %v\n%s", err, tc.fail, b)
			}
			for _, w := range tc.output {
				if !strings.Contains(string(b), w) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			if !tc.fail {
				if _, err := os.Stat(filepath.Join(out, "thanos-optima-0.01.json")); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
