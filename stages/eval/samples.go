package eval

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Sample is one scored zero-shot document, one line of a `optima eval
// --log-samples` file (JSON Lines). The names follow lm-evaluation-harness
// 0.4's samples_<task>_<date>.jsonl records (lm_eval/evaluator.py
// evaluate, log_samples) and the variables of its multiple-choice
// process_results (lm_eval/api/task.py) where they map; unlike the harness,
// which writes target and the responses as strings, numbers are numbers.
type Sample struct {
	// Task is the task name (ZeroShotTasks): "mmlu" for every MMLU subject.
	Task string `json:"task"`
	// Subject is the MMLU subject ("abstract_algebra"); empty otherwise.
	Subject string `json:"subject,omitempty"`
	// DocID is the document's index in its task's data file, or for MMLU
	// in its subject's file (the harness's doc_id of subtask mmlu_<subject>).
	DocID int `json:"doc_id"`
	// Target is the gold choice's index.
	Target int `json:"target"`
	// LogLiks is each choice's summed log-likelihood in nats (the
	// harness's lls).
	LogLiks []float64 `json:"lls"`
	// IsGreedy reports per choice whether its greedy continuation matched
	// (the harness's is_greedy); omitted when not computed.
	IsGreedy []bool `json:"is_greedy,omitempty"`
	// CompletionLen is each choice's length in Unicode code points, the
	// divisor of acc_norm (the harness's completion_len).
	CompletionLen []int `json:"completion_len"`
	// Pred is argmax(lls), the first index of the maximum.
	Pred int `json:"pred"`
	// PredNorm is argmax(lls / completion_len); set where the task reports
	// acc_norm (Task.HasNorm).
	PredNorm *int `json:"pred_norm,omitempty"`
	// Acc is 1 when Pred == Target, else 0.
	Acc float64 `json:"acc"`
	// AccNorm is 1 when PredNorm == Target, else 0; set with PredNorm.
	AccNorm *float64 `json:"acc_norm,omitempty"`
}

// key identifies a sample's document across runs.
func (s Sample) key() string { return s.Task + "\x00" + s.Subject + "\x00" + fmt.Sprint(s.DocID) }

// Samples returns one Sample per item of task from its result (which must
// come from Aggregate or Evaluate of the same task: it panics when
// res.LogLiks does not match task's items and choices). Acc and AccNorm
// are computed exactly as Aggregate computes them, so the mean of the
// samples' acc in order is res.Acc bit for bit.
func Samples(task *Task, res TaskResult) []Sample {
	if len(res.LogLiks) != len(task.Items) {
		panic(fmt.Sprintf("eval: Samples: %d log-likelihood rows for %d items of %s", len(res.LogLiks), len(task.Items), task.Name))
	}
	if res.Greedy != nil && len(res.Greedy) != len(task.Items) {
		panic(fmt.Sprintf("eval: Samples: %d greedy rows for %d items of %s", len(res.Greedy), len(task.Items), task.Name))
	}
	out := make([]Sample, len(task.Items))
	perSubject := map[string]int{}
	for i, it := range task.Items {
		lls := res.LogLiks[i]
		if len(lls) != len(it.Choices) {
			panic(fmt.Sprintf("eval: Samples: %s item %d: %d log-likelihoods for %d choices", task.Name, i, len(lls), len(it.Choices)))
		}
		pred, predNorm, lens := scoreItem(it, lls)
		s := Sample{Task: task.Name, Subject: it.Subject, DocID: i, Target: it.Gold,
			LogLiks: append([]float64(nil), lls...), CompletionLen: lens, Pred: pred}
		if it.Subject != "" {
			s.DocID = perSubject[it.Subject]
			perSubject[it.Subject]++
		}
		if res.Greedy != nil {
			if len(res.Greedy[i]) != len(it.Choices) {
				panic(fmt.Sprintf("eval: Samples: %s item %d: %d greedy flags for %d choices", task.Name, i, len(res.Greedy[i]), len(it.Choices)))
			}
			s.IsGreedy = append([]bool(nil), res.Greedy[i]...)
		}
		if pred == it.Gold {
			s.Acc = 1
		}
		if task.HasNorm {
			pn, an := predNorm, 0.0
			if pn == it.Gold {
				an = 1
			}
			s.PredNorm, s.AccNorm = &pn, &an
		}
		out[i] = s
	}
	return out
}

// WriteSamples writes samples to w as JSON Lines, one Sample a line. A
// non-finite log-likelihood (which JSON cannot hold) is an error naming the
// document.
func WriteSamples(w io.Writer, samples []Sample) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, s := range samples {
		for c, v := range s.LogLiks {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("eval: sample %s %s doc %d choice %d: log-likelihood %v is not finite", s.Task, s.Subject, s.DocID, c, v)
			}
		}
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadSamples parses JSON Lines written by WriteSamples. Blank lines are
// skipped; a malformed line, a line without lls, a target or pred outside
// the choices, or lls, is_greedy and completion_len of different lengths
// is an error naming the line.
func ReadSamples(r io.Reader) ([]Sample, error) {
	var out []Sample
	err := jsonLines(r, func(_ int, b []byte) error {
		var s Sample
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return err
		}
		if dec.InputOffset() != int64(len(b)) {
			return errors.New("data after the JSON object")
		}
		n := len(s.LogLiks)
		switch {
		case s.Task == "":
			return errors.New("no task")
		case n == 0:
			return errors.New("no lls")
		case s.Target < 0 || s.Target >= n:
			return fmt.Errorf("target %d outside the %d choices", s.Target, n)
		case s.Pred < 0 || s.Pred >= n:
			return fmt.Errorf("pred %d outside the %d choices", s.Pred, n)
		case s.PredNorm != nil && (*s.PredNorm < 0 || *s.PredNorm >= n):
			return fmt.Errorf("pred_norm %d outside the %d choices", *s.PredNorm, n)
		case s.IsGreedy != nil && len(s.IsGreedy) != n:
			return fmt.Errorf("%d is_greedy flags for %d lls", len(s.IsGreedy), n)
		case len(s.CompletionLen) != n:
			return fmt.Errorf("%d completion_len values for %d lls", len(s.CompletionLen), n)
		case s.Acc != 0 && s.Acc != 1:
			return fmt.Errorf("acc %v is not 0 or 1", s.Acc)
		case s.AccNorm != nil && *s.AccNorm != 0 && *s.AccNorm != 1:
			return fmt.Errorf("acc_norm %v is not 0 or 1", *s.AccNorm)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// isGzip reports whether path names a gzip file (it ends in .gz).
func isGzip(path string) bool { return strings.HasSuffix(path, ".gz") }

// CheckSamplesPath checks, before any work, that samples can be written to
// path: its directory exists and is writable (a temporary file is created
// and removed there) and path is not a directory. Errors name the path.
func CheckSamplesPath(path string) error {
	if path == "" {
		return errors.New("eval: empty samples path")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("eval: samples path %s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("eval: cannot write samples to %s: %w", path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// WriteSamplesFile writes samples to path as WriteSamples does, gzipped
// when path ends in .gz, through a temporary file in path's directory
// renamed over path when complete (a failed write leaves no partial file).
func WriteSamplesFile(path string, samples []Sample) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("eval: samples %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("eval: samples %s: %w", path, err)
	}
	var w io.Writer = tmp
	var gz *gzip.Writer
	if isGzip(path) {
		gz = gzip.NewWriter(tmp)
		w = gz
	}
	if err := WriteSamples(w, samples); err != nil {
		return fmt.Errorf("eval: samples %s: %w", path, err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return fmt.Errorf("eval: samples %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("eval: samples %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("eval: samples %s: %w", path, err)
	}
	return nil
}

// ReadSamplesFile reads a samples file written by WriteSamplesFile
// (gunzipped when path ends in .gz). Errors name the file.
func ReadSamplesFile(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if isGzip(path) {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("eval: %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	s, err := ReadSamples(r)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return s, nil
}

// PairedDifference compares two runs' samples of the same documents
// (models A and B), matched by task, subject and doc id: with
// d_i = acc_i(a) − acc_i(b) ∈ {−1, 0, 1} over the n matched documents, it
// returns diff = mean(d) (= acc(a) − acc(b)) and its standard error
// stderr = sd(d)/sqrt(n), sd the sample standard deviation
// sqrt(Σ(d_i − diff)²/(n − 1)) (0 for n = 1). Pairing removes the
// per-document difficulty both models share, so this stderr is smaller
// than the unpaired sqrt(se_a² + se_b²) when the models agree on most
// documents (Miller, "Adding Error Bars to Evals", arXiv 2411.00640).
// Errors: an empty set, a document twice in a or in b, or a document in
// one set and not the other (naming it).
func PairedDifference(a, b []Sample) (diff, stderr float64, n int, err error) {
	if len(a) == 0 || len(b) == 0 {
		return 0, 0, 0, fmt.Errorf("eval: paired difference of %d and %d samples", len(a), len(b))
	}
	index := func(name string, s []Sample) (map[string]float64, error) {
		m := make(map[string]float64, len(s))
		for _, x := range s {
			k := x.key()
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("eval: samples %s: %s %s doc %d appears twice", name, x.Task, x.Subject, x.DocID)
			}
			m[k] = x.Acc
		}
		return m, nil
	}
	mb, err := index("b", b)
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := index("a", a); err != nil {
		return 0, 0, 0, err
	}
	if len(a) != len(b) {
		return 0, 0, 0, fmt.Errorf("eval: paired difference: a has %d documents, b %d", len(a), len(b))
	}
	d := make([]float64, len(a))
	for i, x := range a {
		y, ok := mb[x.key()]
		if !ok {
			return 0, 0, 0, fmt.Errorf("eval: paired difference: %s %s doc %d is in a but not in b", x.Task, x.Subject, x.DocID)
		}
		d[i] = x.Acc - y
	}
	diff, stderr = meanStderr(d)
	return diff, stderr, len(d), nil
}
