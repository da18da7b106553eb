package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"dense.eval.json":        `{"perplexity": 20.5, "windows": 4, "seqlen": 512}`,
		"wanda-slim.eval.json":   `{"perplexity": 99.25}`,
		"wanda-slim.report.json": `{"config": {"compress": {"quant": {"bits": 4, "method": "slim"}}}, "totals": {"compress": {"err_pruned": 0.25, "err_quantized": 0.3, "err_adapter": 0.3, "bytes": 1048576, "dense_bytes": 4194304}}}`,
		"lora-absmax.eval.json":  `{"perplexity": 50}`,
		"wandalora-slim.report.json": `{"config": {"compress": {"quant": {"bits": 3, "method": "slim"}, "lora": {"rank": 0.1}}},
			"linears": [{"name": "a.q_proj", "compress": {"adapter_rank": 19}}, {"name": "a.up_proj", "compress": {"adapter_rank": 57}}],
			"totals": {"compress": {"err_pruned": 0.25, "err_quantized": 0.5, "err_adapter": 0.125, "bytes": 1048576, "dense_bytes": 4194304}}}`,
		"wandalora-slim-noadapter.eval.json": `{"perplexity": 1000}`,
		"lora-absmax.report.json":            `{"totals": {}}`,
		"g64-optima-absmax.eval.json":        `{"perplexity": 140}`,
		"g64-optima-absmax.report.json": `{"config": {"compress": {"quant": {"bits": 4, "method": "absmax", "group_size": 64}, "lora": {"rank": 0.25}}},
			"linears": [{"name": "a.q_proj", "compress": {"adapter_rank": 8}}, {"name": "a.k_proj"}],
			"totals": {"compress": {"err_pruned": 0.5, "err_quantized": 0.75, "err_adapter": 0.5, "bytes": 2097152, "dense_bytes": 4194304}}}`,
		"g32-wanda-absmax.eval.json": `{"perplexity": 300}`,
		"g32-wanda-absmax.report.json": `{"config": {"compress": {"quant": {"bits": 4, "method": "absmax", "group_size": 32}}},
			"totals": {"compress": {"err_pruned": 0.5, "err_quantized": 0.625, "err_adapter": 0.625, "bytes": 1048576, "dense_bytes": 4194304}}}`,
	})
	var b bytes.Buffer
	if err := Render(&b, dir); err == nil || !strings.Contains(err.Error(), "lora-absmax") {
		t.Fatalf("a report without compression totals: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "lora-absmax.eval.json"))
	b.Reset()
	if err := Render(&b, dir); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"| dense (float) | 16 | | | 20.50 | | | | | |",
		"| Wanda, SLiM-Quant | 4 | tensor | – | 99.25 | 0.2500 | 0.3000 | 0.3000 | 1.0 (4.0) | 0.250 |",
		"| Wanda, AbsMax | | | | not run | | | | | |",
		"| the same, adapter removed | 3 | tensor | (removed) | 1000.00 | 0.2500 | 0.5000 | (removed) | | |",
		"| Wanda + OPTIMA, AbsMax, groups of 64 | 4 | group 64 | 0.25 (8) | 140.00 | 0.5000 | 0.7500 | 0.5000 | 2.0 (4.0) | 0.500 |",
		"| Wanda, AbsMax, groups of 32 | 4 | group 32 | – | 300.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// Extra rows appear only when run; group rows come last, by group size.
	if strings.Contains(got, "Wanda + SLiM-LoRA 0.1, AbsMax") {
		t.Errorf("table lists the extra row wandalora-absmax that has no files:\n%s", got)
	}
	i32, i64, iNo := strings.Index(got, "groups of 32"), strings.Index(got, "groups of 64"), strings.Index(got, "adapter removed")
	if !(iNo < i32 && i32 < i64) {
		t.Errorf("row order: adapter removed at %d, group 32 at %d, group 64 at %d:\n%s", iNo, i32, i64, got)
	}

	writeFiles(t, dir, map[string]string{"g8-nosuch.eval.json": `{"perplexity": 1}`})
	if err := Render(&b, dir); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("an unknown group row: err = %v", err)
	}
}

func TestBreakdown(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"wanda-absmax.report.json": `{"linears": [
			{"name": "model.layers.0.self_attn.q_proj", "den": 1, "compress": {"err_pruned": 0.5, "err_quantized": 1, "err_adapter": 1}},
			{"name": "model.layers.0.mlp.down_proj", "den": 3, "compress": {"err_pruned": 0.25, "err_quantized": 0.5, "err_adapter": 0.25}},
			{"name": "model.layers.1.mlp.down_proj", "den": 4, "compress": {"err_pruned": 0, "err_quantized": 0.75, "err_adapter": 0.5}}]}`,
		"empty.report.json": `{"linears": [{"name": "x.q_proj", "den": 1}]}`,
	})
	var b bytes.Buffer
	if err := Breakdown(&b, dir, "wanda-absmax"); err != nil {
		t.Fatal(err)
	}
	// Den 8: q_proj 1/8 of the weight, errors 0.5/8, 1/8, 1/8; down_proj
	// 7/8, errors 0.75/8, (1.5+3)/8, (0.75+2)/8.
	for _, want := range []string{
		"| q_proj | 0.125 | 0.0625 | 0.1250 | 0.1250 | 1.000 (model.layers.0.self_attn.q_proj) |",
		"| down_proj | 0.875 | 0.0938 | 0.5625 | 0.3438 | 0.750 (model.layers.1.mlp.down_proj) |",
		"| all | 1 | 0.1562 | 0.6875 | 0.4688 | |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("breakdown lacks %q:\n%s", want, b.String())
		}
	}
	if err := Breakdown(&b, dir, "empty"); err == nil {
		t.Error("a report without compressed linears gave no error")
	}
	if err := Breakdown(&b, dir, "missing"); err == nil {
		t.Error("a missing report gave no error")
	}
}

// TestRenderWindows: the table says over which WikiText-2 windows its
// perplexities are, and when rows were scored on different windows (a
// results directory mixing runs with other MAXWIN or SEQLEN) it says that
// those perplexities are not comparable, naming the rows.
func TestRenderWindows(t *testing.T) {
	report := `{"config": {"compress": {"quant": {"bits": 4, "method": "slim"}}}, "totals": {"compress": {"bytes": 1, "dense_bytes": 4}}}`
	for _, tc := range []struct {
		name     string
		wandaWin string
		want     string
	}{
		{"same", `"windows": 32, "seqlen": 2048`, "WikiText-2 perplexity over 32 windows of 2048 tokens."},
		{"different", `"windows": 4, "seqlen": 512`, "not comparable: dense (float), Wanda + OPTIMA, SLiM-Quant: 32 windows of 2048 tokens; Wanda, SLiM-Quant: 4 windows of 512 tokens."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"dense.eval.json":         `{"perplexity": 20, "windows": 32, "seqlen": 2048}`,
				"wanda-slim.eval.json":    `{"perplexity": 99, ` + tc.wandaWin + `}`,
				"wanda-slim.report.json":  report,
				"optima-slim.eval.json":   `{"perplexity": 60, "windows": 32, "seqlen": 2048}`,
				"optima-slim.report.json": report,
			})
			var b bytes.Buffer
			if err := Render(&b, dir); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("table lacks %q:\n%s", tc.want, b.String())
			}
		})
	}
}

// TestRenderMissingDir: a -results directory that does not exist (a typo)
// is an error naming it, not a table with every row "not run".
func TestRenderMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nosuch")
	var b bytes.Buffer
	if err := Render(&b, dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Render(%s): error %v, want one naming the directory", dir, err)
	}
}
