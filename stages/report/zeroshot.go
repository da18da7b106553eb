package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// TaskAccuracy is one zero-shot task's score as lm-evaluation-harness
// reports it (stages/eval.TaskResult).
type TaskAccuracy struct {
	Task string `json:"task"`
	// Items is the number of documents scored.
	Items int `json:"items"`
	// Acc is the accuracy in [0, 1] by summed log-likelihood.
	Acc float64 `json:"acc"`
	// AccNorm is the accuracy by log-likelihood per character, where the
	// harness reports it (ARC, PIQA, OpenBookQA); nil otherwise.
	AccNorm *float64 `json:"acc_norm,omitempty"`
	// Subjects is, for MMLU, the number of subjects scored (MMLU has 57; a
	// data directory may hold fewer); 0 and left out for other tasks.
	Subjects int `json:"subjects,omitempty"`
}

// ZeroShot is the zero-shot section of a prune report (optima prune
// --eval-tasks).
type ZeroShot struct {
	Tasks []TaskAccuracy `json:"tasks"`
	// AverageAcc is the unweighted mean of the tasks' Acc (OPTIMA Table 1's
	// average over six tasks when all six are given).
	AverageAcc float64 `json:"average_acc"`
	// Limit is the per-task (per MMLU subject) item limit, 0 for all items.
	Limit int `json:"limit,omitempty"`
	// Seconds is the wall time of the evaluation.
	Seconds float64 `json:"seconds"`
}

// WriteText writes z as an aligned table: one line per task and the
// average, accuracies in percent.
func (z *ZeroShot) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\titems\tacc\tacc_norm\t")
	for _, t := range z.Tasks {
		norm := "-"
		if t.AccNorm != nil {
			norm = fmt.Sprintf("%.2f", 100**t.AccNorm)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%s\t\n", t.Task, t.Items, 100*t.Acc, norm)
	}
	fmt.Fprintf(tw, "average (%d tasks)\t\t%.2f\t\t\n", len(z.Tasks), 100*z.AverageAcc)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write zero-shot table: %w", err)
	}
	return nil
}

// ZeroShotKey is the report.json key of the zero-shot section.
const ZeroShotKey = "zero_shot"

// AddZeroShot sets the zero-shot section of the report.json at path,
// keeping every other key as it is (the pipeline's Write stage writes the
// rest), and replaces the file atomically (temporary name, then rename).
// Errors name the file.
func AddZeroShot(path string, z *ZeroShot) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	// Keep the existing key order: re-encode through an ordered copy.
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("report: %s: %w", path, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("report: %s: %w", path, err)
		}
	}
	zb, err := json.Marshal(z)
	if err != nil {
		return fmt.Errorf("report: zero-shot section: %w", err)
	}
	if _, ok := m[ZeroShotKey]; !ok {
		keys = append(keys, ZeroShotKey)
	}
	m[ZeroShotKey] = zb
	var buf bytes.Buffer
	buf.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			buf.WriteString(",")
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteString(":")
		buf.Write(m[k])
	}
	buf.WriteString("}")
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	out.WriteByte('\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.json")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	// Keep the replaced file's mode (CreateTemp makes 0600: the rest of
	// the model directory stays readable by others, report.json would not).
	if st, err := os.Stat(path); err == nil {
		if err := tmp.Chmod(st.Mode().Perm()); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return fmt.Errorf("report: %w", err)
		}
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("report: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("report: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
