package eval

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAggregateStderrUndefined: a stderr the harness reports as "N/A"
// (lm-evaluation-harness 0.4.13 lm_eval/evaluator_utils.py: a task of one
// item; lm_eval/api/group.py: a group with an "N/A" subtask stderr) is
// left out of the JSON, not written as 0 (encoding/json cannot write NaN);
// defined stderrs stay numbers.
func TestAggregateStderrUndefined(t *testing.T) {
	// stderrs reads the acc_stderr (and acc_norm_stderr) values of r's JSON:
	// "task", "task_norm", "subject:<name>" and "category:<name>"; an
	// absent key is left out (and a null would be nil).
	stderrs := func(t *testing.T, r TaskResult) map[string]any {
		t.Helper()
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var m struct {
			AccStderr     any `json:"acc_stderr"`
			AccNormStderr any `json:"acc_norm_stderr"`
			Subjects      map[string]map[string]any
			Categories    map[string]map[string]any
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		var top map[string]any
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		out := map[string]any{}
		if _, ok := top["acc_stderr"]; ok {
			out["task"] = m.AccStderr
		}
		if _, ok := top["acc_norm_stderr"]; ok {
			out["task_norm"] = m.AccNormStderr
		}
		for name, s := range m.Subjects {
			if v, ok := s["acc_stderr"]; ok {
				out["subject:"+name] = v
			}
		}
		for name, c := range m.Categories {
			if v, ok := c["acc_stderr"]; ok {
				out["category:"+name] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		task *Task
		lls  [][]float64
		want map[string]any
	}{{
		// optima eval --task mmlu --limit 1: one item per subject.
		name: "mmlu one item per subject",
		task: &Task{Name: "mmlu", Items: []Item{
			{Choices: []string{"a", "b"}, Gold: 0, Subject: "anatomy"},
			{Choices: []string{"a", "b"}, Gold: 1, Subject: "virology"},
		}},
		lls:  [][]float64{{-1, -2}, {-1, -2}},
		want: map[string]any{},
	}, {
		// One subject of one item makes its groups' stderr "N/A" even
		// when the others have a stderr.
		name: "mmlu one single-item subject",
		task: &Task{Name: "mmlu", Items: []Item{
			{Choices: []string{"a", "b"}, Gold: 0, Subject: "anatomy"},
			{Choices: []string{"a", "b"}, Gold: 1, Subject: "virology"},
			{Choices: []string{"a", "b"}, Gold: 0, Subject: "virology"},
		}},
		lls:  [][]float64{{-1, -2}, {-1, -2}, {-1, -2}},
		want: map[string]any{"subject:virology": 0.5, "category:other": 0.5},
	}, {
		name: "one item with acc_norm",
		task: &Task{Name: "piqa", HasNorm: true, Items: []Item{{Choices: []string{"a", "b"}, Gold: 0}}},
		lls:  [][]float64{{-1, -2}},
		want: map[string]any{},
	}, {
		name: "two items",
		task: &Task{Name: "piqa", HasNorm: true, Items: []Item{
			{Choices: []string{"a", "b"}, Gold: 0}, {Choices: []string{"a", "b"}, Gold: 1}}},
		lls:  [][]float64{{-1, -2}, {-1, -2}},
		want: map[string]any{"task": 0.5, "task_norm": 0.5},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, stderrs(t, Aggregate(tc.task, tc.lls))); diff != "" {
				t.Errorf("stderrs (-want +got):\n%s", diff)
			}
		})
	}
}
