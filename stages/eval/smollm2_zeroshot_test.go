package eval

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optima-llm/optima/internal/testenv"
	"github.com/optima-llm/optima/kernels/cpu"
)

// harnessRef is testdata/smollm2_zeroshot_harness.json, written by
// tools/oracle/zeroshot_harness.py (lm-evaluation-harness 0.4.13 on
// SmolLM2-135M-Instruct Q4_1 through transformers' GGUF loading).
type harnessRef struct {
	Command string `json:"command"`
	// LMEval is lm-evaluation-harness's version; Model the GGUF's base name
	// and ModelSHA256 its SHA-256 (hex), when the file records them.
	LMEval      string `json:"lm_eval_version"`
	Model       string `json:"model"`
	ModelSHA256 string `json:"model_sha256"`
	// Limit is the --limit of the run (per MMLU subject); 0: every document.
	Limit    int      `json:"limit"`
	Subjects []string `json:"mmlu_subjects"`
	Tasks    map[string]struct {
		Acc      float64  `json:"acc"`
		AccNorm  *float64 `json:"acc_norm"`
		N        int      `json:"n"`
		Subjects map[string]struct {
			Acc float64 `json:"acc"`
			N   int     `json:"n"`
		} `json:"subjects"`
		Items []struct {
			DocID   int       `json:"doc_id"`
			Gold    int       `json:"gold"`
			LLs     []float64 `json:"lls"`
			Subject string    `json:"subject"`
		} `json:"items"`
	} `json:"tasks"`
}

// harnessFixture is the committed 200-document reference (4 MMLU subjects).
const harnessFixture = "testdata/smollm2_zeroshot_harness.json"

func readHarnessRef(t *testing.T) harnessRef {
	t.Helper()
	return readHarnessFile(t, harnessFixture)
}

// readHarnessFile reads a zeroshot_harness.py output (gzipped when the name
// ends in .gz).
func readHarnessFile(t *testing.T, path string) harnessRef {
	t.Helper()
	b, err := readMaybeGzip(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref harnessRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ref
}

// readMaybeGzip returns the contents of path, gunzipped when it ends in .gz.
func readMaybeGzip(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(path, ".gz") {
		return b, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// refTask loads name from the data directory restricted to what the
// reference scored: the first limit items (per MMLU subject, and only the
// reference's subjects), in the reference's order.
func refTask(t *testing.T, data, name string, limit int, subjects []string) *Task {
	t.Helper()
	task, err := LoadTask(data, name, limit)
	if err != nil {
		t.Fatal(err)
	}
	if name == "mmlu" {
		var items []Item
		for _, s := range subjects {
			for _, it := range task.Items {
				if it.Subject == s {
					items = append(items, it)
				}
			}
		}
		task.Items = items
	}
	return task
}

// TestHarnessAggregation recomputes the reference's accuracies from its own
// per-choice log-likelihoods with Aggregate (acc, acc_norm by character
// length, MMLU weighted by subject size) over the items LoadTask builds,
// checking that the data, the gold indices and the aggregation agree with
// lm-evaluation-harness exactly. It needs no model.
//
// It covers every reference present: the 200-document fixture, the
// committed full-data one (testdata/smollm2_zeroshot_harness_full.json.gz,
// every document and all 57 MMLU subjects, from zeroshot_harness_device.sh
// on an H200, 2026-11-30), and the file OPTIMA_ZEROSHOT_HARNESS_FULL names.
func TestHarnessAggregation(t *testing.T) {
	data := testenv.DataDir(t)
	for _, path := range harnessFiles(t) {
		t.Run(path, func(t *testing.T) { checkHarnessAggregation(t, data, readHarnessFile(t, path)) })
	}
}

func checkHarnessAggregation(t *testing.T, data string, ref harnessRef) {
	for _, name := range ZeroShotTasks {
		t.Run(name, func(t *testing.T) {
			r, ok := ref.Tasks[name]
			if !ok {
				t.Fatalf("reference lacks %s", name)
			}
			task := refTask(t, data, name, ref.Limit, ref.Subjects)
			if len(task.Items) != r.N || len(r.Items) != r.N {
				t.Fatalf("%d items, reference n %d with %d items", len(task.Items), r.N, len(r.Items))
			}
			lls := make([][]float64, r.N)
			for i, it := range r.Items {
				if it.Gold != task.Items[i].Gold || len(it.LLs) != len(task.Items[i].Choices) || it.Subject != task.Items[i].Subject {
					t.Fatalf("item %d: reference gold %d, %d choices, subject %q; ours %d, %d, %q",
						i, it.Gold, len(it.LLs), it.Subject, task.Items[i].Gold, len(task.Items[i].Choices), task.Items[i].Subject)
				}
				lls[i] = it.LLs
			}
			got := Aggregate(task, lls)
			if math.Abs(got.Acc-r.Acc) > 1e-9 {
				t.Errorf("acc %v, harness %v", got.Acc, r.Acc)
			}
			if (got.AccNorm == nil) != (r.AccNorm == nil) || (got.AccNorm != nil && math.Abs(*got.AccNorm-*r.AccNorm) > 1e-9) {
				t.Errorf("acc_norm %v, harness %v", got.AccNorm, r.AccNorm)
			}
			for s, rs := range r.Subjects {
				if gs := got.Subjects[s]; gs.Items != rs.N || math.Abs(gs.Acc-rs.Acc) > 1e-9 {
					t.Errorf("subject %s: %+v, harness acc %v n %d", s, gs, rs.Acc, rs.N)
				}
			}
		})
	}
}

// TestSmolLM2ZeroShot scores SmolLM2-135M (dense) on the first
// OPTIMA_ZEROSHOT_ITEMS items (default 10) of each task and of each of the
// reference's MMLU subjects, and compares with lm-evaluation-harness's
// per-choice log-likelihoods on the same items (within 1e-4, relative for
// large values) and its accuracies recomputed on that subset (within 0.5
// points). With OPTIMA_ZEROSHOT_ITEMS=200 it covers the whole reference.
//
// OPTIMA_ZEROSHOT_REF names another reference file, e.g. the full-data one
// (testdata/smollm2_zeroshot_harness_full.json.gz: all documents, all 57
// MMLU subjects); the first OPTIMA_ZEROSHOT_ITEMS items of each task and
// subject are then compared with it (with 10: 50 items of the five tasks
// and 570 of MMLU's).
//
// Measured here: the default 10 items per task (80 items, 40 of them MMLU)
// take 22 s; per-choice log-likelihoods agree to 1.4e-5 relative. With
// OPTIMA_ZEROSHOT_ITEMS=200 (1,487 items) scoring takes 248 s, the
// log-likelihoods agree to 2.8e-5, and every acc and acc_norm equals the
// harness's: piqa 64.0/65.5, arc_easy 49.0/46.0, arc_challenge 23.5/28.0,
// winogrande 51.5, openbookqa 19.0/35.5, mmlu (4 subjects) 21.56.
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -run SmolLM2ZeroShot -v ./stages/eval
func TestSmolLM2ZeroShot(t *testing.T) {
	src, fam, w := openSmolLM2(t)
	ref := readHarnessRef(t)
	if p := os.Getenv("OPTIMA_ZEROSHOT_REF"); p != "" {
		ref = readHarnessFile(t, p)
	}
	n := 10
	if s := os.Getenv("OPTIMA_ZEROSHOT_ITEMS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("OPTIMA_ZEROSHOT_ITEMS=%q: want a positive integer", s)
		}
	}
	if ref.Limit > 0 { // 0: the reference holds every document
		n = min(n, ref.Limit)
	}
	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	data := testenv.DataDir(t)
	var tasks []*Task
	for _, name := range ZeroShotTasks {
		tasks = append(tasks, refTask(t, data, name, n, ref.Subjects))
	}
	s := &Scorer{Backend: cpu.New(0), Family: fam, Load: WeightsLoader(w), Tokenizer: tok}
	start := time.Now()
	res, err := s.Evaluate(context.Background(), tasks, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scored %d items per task (per MMLU subject) in %.1fs", n, time.Since(start).Seconds())
	for k, task := range tasks {
		r := ref.Tasks[task.Name]
		// The reference's items for the subset, in the same order.
		var refLL [][]float64
		for _, it := range r.Items {
			if it.DocID < n {
				refLL = append(refLL, it.LLs)
			}
		}
		if len(refLL) != len(task.Items) {
			t.Fatalf("%s: %d items, %d in the reference subset", task.Name, len(task.Items), len(refLL))
		}
		worst := 0.0
		for i := range refLL {
			for c, want := range refLL[i] {
				got := res[k].LogLiks[i][c]
				d := math.Abs(got-want) / max(1, math.Abs(want))
				worst = max(worst, d)
				if d > 1e-4 {
					t.Errorf("%s item %d choice %d: loglik %.5f, harness %.5f", task.Name, i, c, got, want)
				}
			}
		}
		want := Aggregate(task, refLL)
		t.Logf("%-13s items %3d  acc %.4f (harness %.4f)  acc_norm %s (harness %s)  worst loglik diff %.2g",
			task.Name, res[k].Items, res[k].Acc, want.Acc, fmtPtr(res[k].AccNorm), fmtPtr(want.AccNorm), worst)
		if math.Abs(res[k].Acc-want.Acc) > 0.005 {
			t.Errorf("%s: acc %.4f, harness %.4f on the same items", task.Name, res[k].Acc, want.Acc)
		}
		if res[k].AccNorm != nil && math.Abs(*res[k].AccNorm-*want.AccNorm) > 0.005 {
			t.Errorf("%s: acc_norm %.4f, harness %.4f on the same items", task.Name, *res[k].AccNorm, *want.AccNorm)
		}
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 4, 64)
}
