package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	for row, want := range map[string]string{
		"dense":           "dense",
		"sgpt50-own":      "SparseGPT 50% / own",
		"thanos24-optima": "Thanos 2:4 / optima",
		"wanda50-none":    "Wanda 50% / none",
		"admm24-own":      "ADMM 2:4 / own",
	} {
		if got := Label(row); got != want {
			t.Errorf("Label(%q) = %q, want %q", row, got, want)
		}
	}
}

func TestLoadAndMarkdown(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dense.eval.json", `{"perplexity": 9, "windows": 3, "window_nll": [1, 2, 9]}`)
	write("sgpt50-own.eval.json", `{"window_nll": [2, 4]}`)
	write("sgpt50-own.report.json", `{"linears": [{"damping": 0.01}, {"damping": 0.1}], "totals": {"sparsity": 0.5, "err_before": 0.02, "err_after": 0.01, "seconds": 7}}`)
	d, err := Load(dir, "dense", 2)
	if err != nil || math.Abs(d.PPL-math.Exp(1.5)) > 1e-12 || d.HasReport {
		t.Fatalf("dense: %+v %v", d, err)
	}
	s, err := Load(dir, "sgpt50-own", 2)
	if err != nil || math.Abs(s.PPL-math.Exp(3)) > 1e-12 || s.MaxDamping != 0.1 || s.ErrAfter != 0.01 {
		t.Fatalf("sgpt50-own: %+v %v", s, err)
	}
	if _, err := Load(dir, "sgpt50-own", 3); err == nil {
		t.Error("too few windows accepted")
	}
	if _, err := Load(dir, "thanos50-own", 2); !os.IsNotExist(err) {
		t.Errorf("missing row: %v", err)
	}
	var b bytes.Buffer
	Markdown(&b, []Result{d, s}, []string{"thanos50-own"}, 2)
	for _, want := range []string{"| dense | 4.482 | —", "| SparseGPT 50% / own | 20.086 | 0.5000 | 0.02000 | 0.01000 | 0.1 | 7 |", "Not computed: thanos50-own."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	png := filepath.Join(dir, "p.png")
	if err := Plot([]Result{d, s}, 2, png); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
}
