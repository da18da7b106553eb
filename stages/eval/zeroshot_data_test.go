package eval

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/testenv"
)

// TestLoadTaskCounts loads every task of the data directory whole and with
// a limit, checking the sizes its README gives and each item's shape.
func TestLoadTaskCounts(t *testing.T) {
	data := testenv.DataDir(t)
	for _, tc := range []struct {
		name     string
		items    int
		choices  int
		hasNorm  bool
		subjects int
	}{
		{"piqa", 1838, 2, true, 0},
		{"arc_easy", 2376, 4, true, 0},
		{"arc_challenge", 1172, 4, true, 0},
		{"winogrande", 1267, 2, false, 0},
		{"openbookqa", 500, 4, true, 0},
		{"mmlu", 14042, 4, false, 57},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := LoadTask(data, tc.name, 0)
			if err != nil {
				t.Fatal(err)
			}
			if task.Name != tc.name || len(task.Items) != tc.items || task.HasNorm != tc.hasNorm {
				t.Fatalf("name %q, %d items, hasNorm %v; want %q, %d, %v", task.Name, len(task.Items), task.HasNorm, tc.name, tc.items, tc.hasNorm)
			}
			subjects := map[string]int{}
			for i, it := range task.Items {
				if len(it.Choices) != tc.choices || len(it.Contexts) != tc.choices || len(it.Continuations) != tc.choices || it.Gold < 0 || it.Gold >= tc.choices {
					t.Fatalf("item %d: %d choices, gold %d", i, len(it.Choices), it.Gold)
				}
				for c := range it.Choices {
					if !strings.HasPrefix(it.Continuations[c], " ") || it.Contexts[c] == "" {
						t.Fatalf("item %d choice %d: context %q continuation %q", i, c, it.Contexts[c], it.Continuations[c])
					}
				}
				if it.Subject != "" {
					subjects[it.Subject]++
				}
			}
			if len(subjects) != tc.subjects {
				t.Errorf("%d subjects, want %d", len(subjects), tc.subjects)
			}
			limited, err := LoadTask(data, tc.name, 7)
			if err != nil {
				t.Fatal(err)
			}
			want := 7 * max(1, tc.subjects)
			if len(limited.Items) != want {
				t.Errorf("limit 7: %d items, want %d", len(limited.Items), want)
			}
			if tc.subjects == 0 {
				if diff := cmp.Diff(task.Items[:7], limited.Items); diff != "" {
					t.Errorf("limit 7 is not the first 7 items:\n%s", diff)
				}
			}
		})
	}
	if _, err := LoadTask(data, "hellaswag", 0); err == nil || !strings.Contains(err.Error(), "hellaswag") {
		t.Errorf("unknown task: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func() error
		want  string
	}{
		{"choice bad json", func() error {
			_, err := ParseChoiceJSONL(strings.NewReader("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{oops\n"), "")
			return err
		}, "line 2"},
		{"choice gold range", func() error {
			_, err := ParseChoiceJSONL(strings.NewReader(`{"query": "q", "choices": ["a", "b"], "gold": 2}`), "")
			return err
		}, "gold 2"},
		{"choice missing gold", func() error {
			_, err := ParseChoiceJSONL(strings.NewReader(`{"query": "q", "choices": ["a", "b"]}`), "")
			return err
		}, "missing"},
		{"winogrande one option", func() error {
			_, err := ParseWinoGrande(strings.NewReader(`{"context_options": ["a"], "continuation": "b", "gold": 0}`))
			return err
		}, "1 choices"},
		{"piqa label count", func() error {
			_, err := ParsePIQA(strings.NewReader(`{"goal": "g", "sol1": "a", "sol2": "b"}`), strings.NewReader("0\n1\n"))
			return err
		}, "more labels"},
		{"piqa missing label", func() error {
			_, err := ParsePIQA(strings.NewReader("{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}"), strings.NewReader("0\n"))
			return err
		}, "1 labels for 2"},
		{"piqa bad label", func() error {
			_, err := ParsePIQA(strings.NewReader(`{"goal": "g", "sol1": "a", "sol2": "b"}`), strings.NewReader("2\n"))
			return err
		}, "gold 2"},
		{"mmlu header", func() error { _, err := ParseMMLUCSV(strings.NewReader("q,a,b,c,d,answer\n"), "x"); return err }, "header"},
		{"mmlu answer", func() error {
			_, err := ParseMMLUCSV(strings.NewReader("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,4\n"), "x")
			return err
		}, "row 1"},
		{"mmlu fields", func() error {
			_, err := ParseMMLUCSV(strings.NewReader("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,1\n"), "x")
			return err
		}, "fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestParseBOM: a file saved with a UTF-8 byte order mark (a Windows
// editor's) parses as the same file without it, for every parser.
func TestParseBOM(t *testing.T) {
	const bom = "\ufeff"
	choice := `{"query": "q", "choices": ["a", "b"], "gold": 1}` + "\r\n"
	wino := `{"context_options": ["a x", "a y"], "continuation": "b", "gold": 1}` + "\n"
	piqa := `{"goal": "g", "sol1": "a", "sol2": "b"}` + "\n"
	mmlu := "question,choice0,choice1,choice2,choice3,answer\r\n\"q, r\",a,b,c,d,3\r\n"
	for _, tc := range []struct {
		name  string
		parse func(prefix string) (any, error)
	}{
		{"choice", func(p string) (any, error) { return ParseChoiceJSONL(strings.NewReader(p+choice), "") }},
		{"winogrande", func(p string) (any, error) { return ParseWinoGrande(strings.NewReader(p + wino)) }},
		{"piqa questions", func(p string) (any, error) {
			return ParsePIQA(strings.NewReader(p+piqa), strings.NewReader("1\n"))
		}},
		{"piqa labels", func(p string) (any, error) {
			return ParsePIQA(strings.NewReader(piqa), strings.NewReader(p+"1\r\n"))
		}},
		{"mmlu", func(p string) (any, error) { return ParseMMLUCSV(strings.NewReader(p+mmlu), "x") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := tc.parse("")
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.parse(bom)
			if err != nil {
				t.Fatalf("with a BOM: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("with a BOM (-without +with):\n%s", diff)
			}
		})
	}
}

// TestMMLUContext checks the prompt against the harness's template on a
// question with surrounding whitespace (stripped) and choices with inner
// spaces (kept).
func TestMMLUContext(t *testing.T) {
	got := MMLUContext("high_school_us_history", "  What year? \n", [4]string{"1776", " 1789", "1812 ", "none"})
	want := "The following are multiple choice questions (with answers) about high school us history.\n\nWhat year?\nA. 1776\nB.  1789\nC. 1812 \nD. none\nAnswer:"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// checkItems checks the invariants every parsed item holds.
func checkItems(t *testing.T, items []Item) {
	for i, it := range items {
		n := len(it.Choices)
		if n < 2 || len(it.Contexts) != n || len(it.Continuations) != n || it.Gold < 0 || it.Gold >= n {
			t.Fatalf("item %d: %d choices, %d contexts, %d continuations, gold %d", i, n, len(it.Contexts), len(it.Continuations), it.Gold)
		}
	}
}

func FuzzParseChoiceJSONL(f *testing.F) {
	f.Add([]byte(`{"query": "Question: q", "choices": ["a", "b", "c", "d"], "gold": 3}` + "\n\n"))
	f.Add([]byte(`{"query": "", "choices": [], "gold": -1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		task, err := ParseChoiceJSONL(bytes.NewReader(b), "\nAnswer:")
		if err == nil {
			checkItems(t, task.Items)
		}
	})
}

func FuzzParseWinoGrande(f *testing.F) {
	f.Add([]byte(`{"context_options": ["a b", "a c"], "continuation": " d. ", "gold": 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		task, err := ParseWinoGrande(bytes.NewReader(b))
		if err == nil {
			checkItems(t, task.Items)
		}
	})
}

func FuzzParsePIQA(f *testing.F) {
	f.Add([]byte(`{"goal": "g", "sol1": "a", "sol2": "b"}`), []byte("1\n"))
	f.Fuzz(func(t *testing.T, q, l []byte) {
		task, err := ParsePIQA(bytes.NewReader(q), bytes.NewReader(l))
		if err == nil {
			checkItems(t, task.Items)
		}
	})
}

func FuzzParseMMLUCSV(f *testing.F) {
	f.Add([]byte("question,choice0,choice1,choice2,choice3,answer\n\"q, with comma\",a,b,c,d,2\n"))
	f.Add([]byte("\ufeffquestion,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d, 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := ParseMMLUCSV(bytes.NewReader(b), "s")
		if err == nil {
			checkItems(t, items)
		}
	})
}
