package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAddZeroShot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	r := New(map[string]any{"method": "wanda"}, []LinearReport{{Name: "a", Out: 2, In: 3, Sparsity: 0.5}})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	norm := 0.25
	for _, z := range []*ZeroShot{
		{Tasks: []TaskAccuracy{{Task: "piqa", Items: 10, Acc: 0.6, AccNorm: &norm}}, AverageAcc: 0.6, Limit: 10, Seconds: 1},
		// A second call replaces the section.
		{Tasks: []TaskAccuracy{{Task: "mmlu", Items: 4, Acc: 0.5}, {Task: "piqa", Items: 3, Acc: 1, AccNorm: &norm}}, AverageAcc: 0.75},
	} {
		if err := AddZeroShot(path, z); err != nil {
			t.Fatal(err)
		}
		// The rewritten file keeps the mode of the one it replaces (it is
		// part of a model directory others read), not CreateTemp's 0600.
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("report.json after AddZeroShot: mode %v (%v), want -rw-r--r--", st.Mode().Perm(), err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var got Report
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		want := *r
		want.Config = map[string]any{"method": "wanda"}
		want.ZeroShot = z
		if diff := cmp.Diff(&want, &got); diff != "" {
			t.Errorf("report after AddZeroShot (-want +got):\n%s", diff)
		}
		// The other keys keep their order; the section comes last.
		s := string(raw)
		if i, j, k := strings.Index(s, `"config"`), strings.Index(s, `"totals"`), strings.Index(s, `"zero_shot"`); !(i < j && j < k) || strings.Count(s, `"zero_shot"`) != 1 {
			t.Errorf("key order config %d, totals %d, zero_shot %d (count %d)", i, j, k, strings.Count(s, `"zero_shot"`))
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	var text bytes.Buffer
	got := *r
	got.ZeroShot = &ZeroShot{Tasks: []TaskAccuracy{{Task: "piqa", Items: 3, Acc: 1, AccNorm: &norm}, {Task: "mmlu", Items: 4, Acc: 0.5}}, AverageAcc: 0.75}
	if err := got.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"piqa", "100.00", "25.00", "mmlu", "50.00", "average (2 tasks)", "75.00"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestAddZeroShotErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("[1, 2]"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.json"), "missing.json"},
		{bad, "bad.json"},
	} {
		err := AddZeroShot(tc.path, &ZeroShot{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddZeroShot(%s): %v, want an error naming %s", tc.path, err, tc.want)
		}
	}
}
