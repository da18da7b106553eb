package eval

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
)

// mmluCategoriesJSON is the harness's MMLU category map, written by
// tools/oracle/mmlu_group_stderr.py from lm-evaluation-harness 0.4.13's
// lm_eval/tasks/mmlu/default yaml files (its "source" field says which).
//
//go:embed mmlu_categories.json
var mmluCategoriesJSON []byte

// MMLUCategories maps each of MMLU's 57 subjects ("abstract_algebra") to its
// lm-evaluation-harness category: "stem", "other", "social_sciences" or
// "humanities" (the tag mmlu_<category>_tasks of
// lm_eval/tasks/mmlu/default/mmlu_<subject>.yaml, 0.4.13; the data is
// stages/eval/mmlu_categories.json). Do not modify.
var MMLUCategories map[string]string

// MMLUCategoryOrder lists the categories in the order of the harness's mmlu
// group (lm_eval/tasks/mmlu/default/_mmlu.yaml), which is also the order in
// which its aggregation visits the subjects.
var MMLUCategoryOrder []string

func init() {
	var c struct {
		Order      []string          `json:"order"`
		Categories map[string]string `json:"categories"`
	}
	if err := json.Unmarshal(mmluCategoriesJSON, &c); err != nil {
		panic("eval: mmlu_categories.json: " + err.Error())
	}
	MMLUCategories, MMLUCategoryOrder = c.Categories, c.Order
}

// GroupResult is an lm-evaluation-harness group's aggregate of its subjects
// (leaf tasks): MMLU or one of its categories.
type GroupResult struct {
	// Acc is aggregate_subtask_metrics with weight_by_size: Σ acc_i·n_i / Σ n_i.
	Acc float64 `json:"acc"`
	// AccStderr is PooledSampleStderr of the subjects' acc_stderr and
	// sizes; nil, and left out of the JSON, when a subject's is nil (one
	// item), where the harness reports "N/A" (lm_eval/api/group.py,
	// 0.4.13: pooled_sample_stderr only when no subtask stderr is "N/A").
	AccStderr *float64 `json:"acc_stderr,omitempty"`
	// Items is Σ n_i; Subjects the number of subjects aggregated.
	Items    int `json:"items"`
	Subjects int `json:"subjects"`
}

// PooledSampleStderr is lm-evaluation-harness 0.4's pooled_sample_stderr
// (lm_eval/api/metrics.py), the stderr of a group whose score weights its
// subtasks by size: with subtask sizes n_i and stderrs se_i (k subtasks,
// N = Σ n_i), the pooled variance is
//
//	s² = Σ (n_i − 1)·se_i²·n_i / (N − k)
//
// (se_i²·n_i is subtask i's sample variance) and the result is sqrt(s²/N).
// It pools the within-subtask variances only: the spread of the subtasks'
// means adds nothing, so it is not the stderr over all items pooled. It
// returns NaN when N ≤ k (every subtask has one item: the pooled variance
// is undefined, and the harness's division by zero raises; its groups
// never get there, as a one-item subtask's stderr is "N/A"). It panics when
// the lengths differ or a size is below 1.
func PooledSampleStderr(stderrs []float64, sizes []int) float64 {
	if len(stderrs) != len(sizes) {
		panic(fmt.Sprintf("eval: PooledSampleStderr of %d stderrs and %d sizes", len(stderrs), len(sizes)))
	}
	var num float64
	total := 0
	for i, se := range stderrs {
		n := sizes[i]
		if n < 1 {
			panic(fmt.Sprintf("eval: PooledSampleStderr: size %d", n))
		}
		// The harness's order: (size - 1) * stderr**2 * size.
		num += float64(n-1) * (se * se) * float64(n)
		total += n
	}
	if total <= len(sizes) {
		return math.NaN()
	}
	return math.Sqrt(num / float64(total-len(sizes)) / float64(total))
}

// mmluLeafOrder returns subjects in the order the harness's mmlu group
// visits its leaf tasks: categories in MMLUCategoryOrder, each category's
// subjects sorted by name; subjects without a category follow, sorted.
func mmluLeafOrder(subjects []string) []string {
	rank := map[string]int{}
	for i, c := range MMLUCategoryOrder {
		rank[c] = i
	}
	out := slices.Clone(subjects)
	sort.Slice(out, func(i, j int) bool {
		ri, oki := rank[MMLUCategories[out[i]]]
		rj, okj := rank[MMLUCategories[out[j]]]
		if !oki {
			ri = len(MMLUCategoryOrder)
		}
		if !okj {
			rj = len(MMLUCategoryOrder)
		}
		if ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// MMLUGroups aggregates per-subject results as lm-evaluation-harness 0.4.13
// reports its mmlu group and the group's four categories (lm_eval/api/group.py
// Group.aggregate: a group aggregates its leaf tasks, recursively, not its
// subgroups' results; weight_by_size as in lm_eval/tasks/mmlu/default
// _mmlu*.yaml): Acc = Σ acc_i·n_i / Σ n_i and AccStderr =
// PooledSampleStderr over the subjects, visited in the harness's order
// (which fixes the floating-point sums bit for bit), or nil when a member
// subject's AccStderr is nil (the harness's "N/A"). mmlu covers every
// subject given; categories (keyed "stem", "other", "social_sciences",
// "humanities") only those with subjects among them, and a subject missing
// from MMLUCategories counts in mmlu only. It panics on an empty map.
func MMLUGroups(subjects map[string]SubjectResult) (mmlu GroupResult, categories map[string]GroupResult) {
	if len(subjects) == 0 {
		panic("eval: MMLUGroups of no subjects")
	}
	names := make([]string, 0, len(subjects))
	for s := range subjects {
		names = append(names, s)
	}
	order := mmluLeafOrder(names)
	agg := func(members []string) GroupResult {
		var weighted float64
		ses := make([]float64, len(members))
		sizes := make([]int, len(members))
		total := 0
		na := false
		for i, s := range members {
			r := subjects[s]
			weighted += r.Acc * float64(r.Items)
			if r.AccStderr == nil {
				na = true
			} else {
				ses[i] = *r.AccStderr
			}
			sizes[i] = r.Items
			total += r.Items
		}
		g := GroupResult{Acc: weighted / float64(total), Items: total, Subjects: len(members)}
		if !na {
			se := PooledSampleStderr(ses, sizes)
			g.AccStderr = &se
		}
		return g
	}
	categories = map[string]GroupResult{}
	for _, c := range MMLUCategoryOrder {
		var members []string
		for _, s := range order {
			if MMLUCategories[s] == c {
				members = append(members, s)
			}
		}
		if len(members) > 0 {
			categories[c] = agg(members)
		}
	}
	return agg(order), categories
}
