package tokenizer

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzFastJSON checks the fast vocab and merges parsers against
// encoding/json on valid JSON: when they accept, they agree.
func FuzzFastJSON(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b\n": 2, "\u00e9": 3, "a": 4}`, `{}`, `{"x": -0}`, `{"x": 1e3}`, `{"\ud83d\ude42": 7}`,
		`["a b", ["c", "d"], "e\tf g"]`, `[]`, `[["a","b"] , "c d"]`, `["\ud800 x"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		if got, ok := fastVocab(b); ok {
			var want map[string]int64
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fastVocab accepted %q, encoding/json: %v", b, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("fastVocab(%q) (-json +fast):\n%s", b, diff)
			}
		}
		if got, ok := splitArray(b); ok {
			var want []json.RawMessage
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("splitArray accepted %q, encoding/json: %v", b, err)
			}
			if len(got) != len(want) {
				t.Fatalf("splitArray(%q): %d elements, encoding/json %d", b, len(got), len(want))
			}
			for i := range got {
				if string(got[i]) != string(want[i]) {
					t.Fatalf("splitArray(%q)[%d] = %s, encoding/json %s", b, i, got[i], want[i])
				}
				a, c, ok := fastMerge(got[i])
				if !ok {
					continue
				}
				var s string
				var pair []string
				switch {
				case json.Unmarshal(got[i], &s) == nil:
					if s != a+" "+c {
						t.Fatalf("fastMerge(%s) = %q %q", got[i], a, c)
					}
				case json.Unmarshal(got[i], &pair) == nil:
					if len(pair) != 2 || pair[0] != a || pair[1] != c {
						t.Fatalf("fastMerge(%s) = %q %q, encoding/json %q", got[i], a, c, pair)
					}
				default:
					t.Fatalf("fastMerge accepted %s", got[i])
				}
			}
		}
	})
}
