package eval

import (
	"encoding/json"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mmluGoldenFile is tools/oracle/mmlu_group_stderr.py's output: the harness's
// own metric functions (lm_eval 0.4.13) applied to SmolLM2's per-subject
// results from harnessFullFixture.
const mmluGoldenFile = "testdata/mmlu_group_stderr_smollm2.json"

type mmluGolden struct {
	LMEval    string                   `json:"lm_eval_version"`
	LeafOrder []string                 `json:"leaf_order"`
	Subjects  map[string]SubjectResult `json:"subjects"`
	Groups    map[string]struct {
		Acc       float64  `json:"acc"`
		AccStderr *float64 `json:"acc_stderr"`
		N         int      `json:"n"`
		Subjects  int      `json:"subjects"`
	} `json:"groups"`
	ItemPooled float64 `json:"item_pooled_acc_stderr"`
}

// The golden file names a subject's size n; SubjectResult says items.
func (g *mmluGolden) UnmarshalJSON(b []byte) error {
	type plain mmluGolden
	var raw struct {
		plain
		Subjects map[string]struct {
			Acc       float64  `json:"acc"`
			AccStderr *float64 `json:"acc_stderr"`
			N         int      `json:"n"`
		} `json:"subjects"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*g = mmluGolden(raw.plain)
	g.Subjects = map[string]SubjectResult{}
	for s, r := range raw.Subjects {
		g.Subjects[s] = SubjectResult{Acc: r.Acc, Items: r.N, AccStderr: r.AccStderr}
	}
	return nil
}

func readMMLUGolden(t *testing.T) mmluGolden {
	t.Helper()
	b, err := os.ReadFile(mmluGoldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var g mmluGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", mmluGoldenFile, err)
	}
	return g
}

// TestMMLUGroupStderrHarness: Aggregate over every MMLU document of
// SmolLM2-135M (the harness's log-likelihoods and golds) reports each
// subject's acc and acc_stderr, the mmlu group's acc_stderr and each
// category's acc and acc_stderr exactly as lm-evaluation-harness 0.4.13's
// aggregation code computes them (tools/oracle/mmlu_group_stderr.py), and
// that differs from the stderr over all items pooled.
func TestMMLUGroupStderrHarness(t *testing.T) {
	g := readMMLUGolden(t)
	ref := readHarnessFile(t, harnessFullFixture)
	if g.LMEval != "0.4.13" || ref.LMEval != "0.4.13" {
		t.Fatalf("lm_eval versions %q (golden) and %q (fixture), want 0.4.13", g.LMEval, ref.LMEval)
	}
	task := &Task{Name: "mmlu"}
	var lls [][]float64
	for _, it := range ref.Tasks["mmlu"].Items {
		task.Items = append(task.Items, Item{Choices: []string{"A", "B", "C", "D"}, Gold: it.Gold, Subject: it.Subject,
			Contexts: make([]string, 4), Continuations: make([]string, 4)})
		lls = append(lls, it.LLs)
	}
	if len(task.Items) != 14042 {
		t.Fatalf("%d mmlu items in %s, want 14042", len(task.Items), harnessFullFixture)
	}
	res := Aggregate(task, lls)
	if diff := cmp.Diff(g.Subjects, res.Subjects); diff != "" {
		t.Errorf("subjects (-harness +ours):\n%s", diff)
	}
	if diff := cmp.Diff(g.Groups["mmlu"].AccStderr, res.AccStderr); diff != "" {
		t.Errorf("mmlu acc_stderr (-harness +ours):\n%s", diff)
	}
	if math.Abs(res.Acc-g.Groups["mmlu"].Acc) > 1e-15 {
		t.Errorf("mmlu acc %.17g, harness %.17g", res.Acc, g.Groups["mmlu"].Acc)
	}
	mmlu, cats := MMLUGroups(res.Subjects)
	got := map[string]GroupResult{"mmlu": mmlu}
	for c, r := range res.Categories {
		got[c] = r
	}
	if diff := cmp.Diff(cats, res.Categories); diff != "" {
		t.Errorf("Aggregate's categories differ from MMLUGroups' (-MMLUGroups +Aggregate):\n%s", diff)
	}
	want := map[string]GroupResult{}
	for name, r := range g.Groups {
		want[name] = GroupResult{Acc: r.Acc, AccStderr: r.AccStderr, Items: r.N, Subjects: r.Subjects}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups (-harness +ours):\n%s", diff)
	}
	if diff := cmp.Diff(g.LeafOrder, mmluLeafOrder(res.SubjectNames())); diff != "" {
		t.Errorf("leaf order (-harness +ours):\n%s", diff)
	}
	// The old number (mean_stderr over all 14042 items) is not the harness's.
	if _, se := meanStderr(mmluScores(task, lls)); res.AccStderr == nil || se != g.ItemPooled || se == *res.AccStderr {
		t.Errorf("item-pooled stderr %.17g (golden %.17g), group stderr %v", se, g.ItemPooled, res.AccStderr)
	}
}

// mmluScores returns the 0/1 acc of each item.
func mmluScores(task *Task, lls [][]float64) []float64 {
	out := make([]float64, len(lls))
	for i, it := range task.Items {
		if argmax(lls[i]) == it.Gold {
			out[i] = 1
		}
	}
	return out
}

// TestMMLUCategories: the embedded map covers the 57 subjects of the
// harness run, in the harness's four categories with its sizes (19 STEM, 13
// other, 12 social sciences, 13 humanities subjects).
func TestMMLUCategories(t *testing.T) {
	ref := readHarnessFile(t, harnessFullFixture)
	var names []string
	for s := range MMLUCategories {
		names = append(names, s)
	}
	sort.Strings(names)
	if diff := cmp.Diff(ref.Subjects, names); diff != "" {
		t.Errorf("subjects (-harness run +map):\n%s", diff)
	}
	count := map[string]int{}
	for _, c := range MMLUCategories {
		count[c]++
	}
	if diff := cmp.Diff(map[string]int{"stem": 19, "other": 13, "social_sciences": 12, "humanities": 13}, count); diff != "" {
		t.Errorf("subjects per category (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"stem", "other", "social_sciences", "humanities"}, MMLUCategoryOrder); diff != "" {
		t.Errorf("category order (-want +got):\n%s", diff)
	}
	for s, c := range map[string]string{"abstract_algebra": "stem", "business_ethics": "other", "econometrics": "social_sciences", "formal_logic": "humanities", "world_religions": "humanities", "virology": "other"} {
		if MMLUCategories[s] != c {
			t.Errorf("%s: category %q, want %q", s, MMLUCategories[s], c)
		}
	}
}

// TestPooledSampleStderr checks hand-computed values of
// sqrt(Σ(n_i−1)·se_i²·n_i / (N−k) / N).
func TestPooledSampleStderr(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ses   []float64
		sizes []int
		want  float64
	}{
		// (1·0.25·2 + 2·0.04·3) / (5−2) = 0.74/3; / 5; sqrt.
		{"two", []float64{0.5, 0.2}, []int{2, 3}, 0.22211108331943577},
		// One subtask: (n−1)·se²·n / (n−1) / n = se².
		{"one", []float64{0.125}, []int{8}, 0.125},
		// Equal sizes and stderrs: se/sqrt(k)·sqrt((n−1)/(n−1)) = se/sqrt(k)
		// ((n−1)·se²·n·k / (k(n−1)) / (kn) = se²/k).
		{"equal", []float64{0.3, 0.3, 0.3, 0.3}, []int{10, 10, 10, 10}, 0.15},
		// Every subtask of one item: N − k = 0, undefined.
		{"singletons", []float64{0, 0}, []int{1, 1}, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PooledSampleStderr(tc.ses, tc.sizes)
			if math.IsNaN(tc.want) != math.IsNaN(got) || math.Abs(got-tc.want) > 1e-16 {
				t.Errorf("got %.17g, want %.17g", got, tc.want)
			}
		})
	}
	for _, bad := range []struct {
		ses   []float64
		sizes []int
	}{{[]float64{1}, []int{1, 2}}, {[]float64{1}, []int{0}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PooledSampleStderr(%v, %v) did not panic", bad.ses, bad.sizes)
				}
			}()
			PooledSampleStderr(bad.ses, bad.sizes)
		}()
	}
}

// TestMMLUGroupsPartial: with a few subjects (a data directory without all
// 57, or a subject the map lacks), mmlu pools all of them and each category
// only its own; hand-computed values.
func TestMMLUGroupsPartial(t *testing.T) {
	subs := map[string]SubjectResult{
		"anatomy":         {Acc: 0.5, Items: 2, AccStderr: ptr(0.5)},
		"virology":        {Acc: 0.25, Items: 4, AccStderr: ptr(0.25)},
		"not_a_subject":   {Acc: 1, Items: 2, AccStderr: ptr(0)},
		"world_religions": {Acc: 0, Items: 3, AccStderr: ptr(0)},
	}
	mmlu, cats := MMLUGroups(subs)
	// mmlu: acc (0.5·2 + 0.25·4 + 0 + 1·2)/11 = 4/11; pooled variance
	// (1·0.25·2 + 3·0.0625·4)/(11−4) = 1.25/7, stderr sqrt(1.25/7/11).
	wantMMLU := GroupResult{Acc: 4.0 / 11, AccStderr: ptr(math.Sqrt(1.25 / 7 / 11)), Items: 11, Subjects: 4}
	if diff := cmp.Diff(wantMMLU, mmlu, cmpApprox); diff != "" {
		t.Errorf("mmlu (-want +got):\n%s", diff)
	}
	want := map[string]GroupResult{
		"stem":       {Acc: 0.5, AccStderr: ptr(0.5), Items: 2, Subjects: 1},
		"other":      {Acc: 0.25, AccStderr: ptr(0.25), Items: 4, Subjects: 1},
		"humanities": {Acc: 0, AccStderr: ptr(0), Items: 3, Subjects: 1},
	}
	if diff := cmp.Diff(want, cats, cmpApprox); diff != "" {
		t.Errorf("categories (-want +got):\n%s", diff)
	}
}

var cmpApprox = cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-15 })

func ptr(x float64) *float64 { return &x }
