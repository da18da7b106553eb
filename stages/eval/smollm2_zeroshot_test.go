package eval

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// TestSmolLM2ZeroShot is the code check of the zero-shot evaluation: it
// scores SmolLM2-135M (dense, the GGUF of OPTIMA_SMOLLM2_GGUF) with today's
// Scorer on documents of the six tasks and compares, document by document
// (matched by lm-evaluation-harness's doc_id: the index in the task's file,
// per subject for MMLU), each choice's log-likelihood with the harness's
// (within 1e-4, relative for values beyond 1) and the acc and acc_norm over
// those documents with the harness's log-likelihoods aggregated the same way
// (within 0.5 points; on so few documents, equal).
//
// The reference is testdata/smollm2_zeroshot_harness_full.json.gz
// (lm-evaluation-harness 0.4.13 on every document, all 57 MMLU subjects, on
// an H200; see TestSmolLM2ZeroShotFull), or testdata/smollm2_zeroshot_harness.json
// (the first 200 documents, 4 MMLU subjects) in a checkout without it, or
// the file OPTIMA_ZEROSHOT_REF names. From a full-data reference it scores
// a seeded sample spread over the whole data (sampleDocs): for each of the
// five tasks, OPTIMA_ZEROSHOT_ITEMS (default 10) documents, one from each
// tenth of its documents (stratifiedSample), so late documents are always
// in; for MMLU, one document of each of min(57, 3.2·ITEMS) subjects (32 by
// default), the subjects a stratified sample of the 57 as well. The seed is
// OPTIMA_ZEROSHOT_SEED (default 20261130); the test logs the doc ids. From
// a reference of the first N documents
// (OPTIMA_ZEROSHOT_REF=testdata/smollm2_zeroshot_harness.json) it scores the
// first OPTIMA_ZEROSHOT_ITEMS of each task and of each of the reference's
// MMLU subjects, as before the full-data reference existed. A reference
// that records its model's SHA-256 must have scored this GGUF.
//
// Measured here (2 cores shared with other builds, load average ~4, `nice`,
// compiled test binary, best of two): the default sample, 50 documents of
// the five tasks and 32 of MMLU, takes 7.6 s (6.9 s of scoring, 13.1 s of
// CPU); the first 10 documents of the 200-document fixture (90 documents,
// 40 of MMLU's 4 first subjects) took 6.8 s (6.3 s, 11.7 s of CPU) right
// beside it. On the default sample the log-likelihoods agree to 1.1e-5
// relative (MMLU; 3.1e-6 elsewhere) and every acc and acc_norm equals the
// harness's; a log-likelihood moved by 2e-4 relative fails the test. With
// the 200-document fixture and OPTIMA_ZEROSHOT_ITEMS=200 (1,487 documents)
// scoring took 248 s, the log-likelihoods agreed to 2.8e-5, and every acc
// and acc_norm equalled the harness's: piqa 64.0/65.5, arc_easy 49.0/46.0,
// arc_challenge 23.5/28.0, winogrande 51.5, openbookqa 19.0/35.5, mmlu (4
// subjects) 21.56. The full-data result is TestSmolLM2ZeroShotFull's table.
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -count=1 -run 'TestSmolLM2ZeroShot$' -v ./stages/eval
func TestSmolLM2ZeroShot(t *testing.T) {
	src, fam, w := openSmolLM2(t)
	refPath := harnessFixture
	if _, err := os.Stat(harnessFullFixture); err == nil {
		refPath = harnessFullFixture
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if p := os.Getenv("OPTIMA_ZEROSHOT_REF"); p != "" {
		refPath = p
	}
	ref := readHarnessFile(t, refPath)
	if ref.ModelSHA256 != "" {
		if sum := fileSHA256(t, testenv.SmolLM2(t)); sum != ref.ModelSHA256 {
			t.Fatalf("%s scored a model with sha256 %s; OPTIMA_SMOLLM2_GGUF's is %s", refPath, ref.ModelSHA256, sum)
		}
	}
	n := 10
	if s := os.Getenv("OPTIMA_ZEROSHOT_ITEMS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("OPTIMA_ZEROSHOT_ITEMS=%q: want a positive integer", s)
		}
	}
	seed := uint64(20261130)
	if s := os.Getenv("OPTIMA_ZEROSHOT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("OPTIMA_ZEROSHOT_SEED=%q: want an unsigned integer", s)
		}
	}
	data := testenv.DataDir(t)
	var full []*Task
	for _, name := range ZeroShotTasks {
		task, err := LoadTask(data, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, task)
	}

	// The documents to score, by task.
	var keys map[string][]docKey
	if ref.Limit == 0 { // every document: a sample over the whole data
		subjects := min(57, 32*n/10)
		keys = sampleDocs(full, n, subjects, 1, seed)
		t.Logf("%s (every document): a sample seeded %d, %d documents per task and one of each of %d MMLU subjects", refPath, seed, n, subjects)
	} else { // the first ref.Limit: the first n of them
		n = min(n, ref.Limit)
		keys = map[string][]docKey{}
		for _, name := range ZeroShotTasks {
			for _, it := range ref.Tasks[name].Items {
				if it.DocID < n {
					keys[name] = append(keys[name], docKey{it.Subject, it.DocID})
				}
			}
		}
		t.Logf("%s (the first %d documents): the first %d of each task and MMLU subject", refPath, ref.Limit, n)
	}

	var (
		tasks []*Task
		refLL [][][]float64 // by task, document, choice
	)
	for _, f := range full {
		r, ok := ref.Tasks[f.Name]
		if !ok {
			t.Fatalf("%s lacks %s", refPath, f.Name)
		}
		byKey := map[docKey]int{}
		for i, it := range r.Items {
			byKey[docKey{it.Subject, it.DocID}] = i
		}
		task, err := docsTask(f, keys[f.Name])
		if err != nil {
			t.Fatal(err)
		}
		var lls [][]float64
		for i, k := range keys[f.Name] {
			j, ok := byKey[k]
			if !ok {
				t.Fatalf("%s: %s lacks %s", refPath, f.Name, k)
			}
			if g := r.Items[j].Gold; g != task.Items[i].Gold {
				t.Fatalf("%s %s: gold %d, the reference's %d (the data and the reference disagree)", f.Name, k, task.Items[i].Gold, g)
			}
			lls = append(lls, r.Items[j].LLs)
		}
		tasks = append(tasks, task)
		refLL = append(refLL, lls)
		t.Logf("%-13s %v", f.Name, keys[f.Name])
	}

	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	s := &Scorer{Backend: cpu.New(0), Family: fam, Load: WeightsLoader(w), Tokenizer: tok}
	start := time.Now()
	res, err := s.Evaluate(context.Background(), tasks, nil)
	if err != nil {
		t.Fatal(err)
	}
	items := 0
	for _, task := range tasks {
		items += len(task.Items)
	}
	t.Logf("scored %d documents in %.1fs", items, time.Since(start).Seconds())
	worstAll := 0.0
	for k, task := range tasks {
		worst, bad := compareLogLiks(task.Name, keys[task.Name], res[k].LogLiks, refLL[k], 1e-4)
		for _, m := range bad {
			t.Error(m)
		}
		worstAll = max(worstAll, worst)
		want := Aggregate(task, refLL[k])
		t.Logf("%-13s items %3d  acc %.4f (harness %.4f)  acc_norm %s (harness %s)  worst loglik diff %.2g",
			task.Name, res[k].Items, res[k].Acc, want.Acc, fmtPtr(res[k].AccNorm), fmtPtr(want.AccNorm), worst)
		if math.Abs(res[k].Acc-want.Acc) > 0.005 {
			t.Errorf("%s: acc %.4f, harness %.4f on the same documents", task.Name, res[k].Acc, want.Acc)
		}
		if (res[k].AccNorm == nil) != (want.AccNorm == nil) {
			t.Errorf("%s: acc_norm %s, harness %s", task.Name, fmtPtr(res[k].AccNorm), fmtPtr(want.AccNorm))
		} else if res[k].AccNorm != nil && math.Abs(*res[k].AccNorm-*want.AccNorm) > 0.005 {
			t.Errorf("%s: acc_norm %.4f, harness %.4f on the same documents", task.Name, *res[k].AccNorm, *want.AccNorm)
		}
	}
	t.Logf("worst loglik diff over the %d documents: %.2g relative", items, worstAll)
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 4, 64)
}
