package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"dense.eval.json":                    `{"perplexity": 20.5, "windows": 4, "seqlen": 512}`,
		"wanda-slim.eval.json":               `{"perplexity": 99.25}`,
		"wanda-slim.report.json":             `{"totals": {"compress": {"err_pruned": 0.25, "err_quantized": 0.3, "err_adapter": 0.3, "bytes": 1048576, "dense_bytes": 4194304}}}`,
		"lora-absmax.eval.json":              `{"perplexity": 50}`,
		"wandalora-slim.report.json":         `{"totals": {"compress": {"err_pruned": 0.25, "err_quantized": 0.5, "err_adapter": 0.125, "bytes": 1048576, "dense_bytes": 4194304}}}`,
		"wandalora-slim-noadapter.eval.json": `{"perplexity": 1000}`,
		"lora-absmax.report.json":            `{"totals": {}}`,
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := Render(&b, dir); err == nil || !strings.Contains(err.Error(), "lora-absmax") {
		t.Fatalf("a report without compression totals: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "lora-absmax.eval.json"))
	b.Reset()
	if err := Render(&b, dir); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| dense (float) | 20.50 | | | | |",
		"| Wanda, SLiM-Quant | 99.25 | 0.2500 | 0.3000 | 0.3000 | 1.0 (4.0) |",
		"| Wanda, AbsMax | not run |",
		"| the same, adapter removed | 1000.00 | 0.2500 | 0.5000 | (removed) | |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
