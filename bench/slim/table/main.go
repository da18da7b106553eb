// Command table renders bench/slim/run.sh's results as a Markdown table:
// per row the WikiText-2 perplexity, the report's total relative errors
// after pruning, quantization and the adapter, and the memory of the
// compressed linears against float16 dense.
//
//	go run ./bench/slim/table -results bench/slim/results/small
//
// For each row it reads RESULTS/ROW.eval.json (optima eval --json) and,
// except for dense, RESULTS/ROW.report.json. Rows without files are listed
// as not run.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Rows is the table's order: the six rows, then the extra ones.
var Rows = []string{"dense", "wanda-absmax", "wanda-slim", "optima-absmax", "optima-slim", "lora-absmax", "lora-slim", "wandalora-absmax", "wandalora-slim", "wandalora-slim-noadapter"}

// Labels are the rows' human names.
var Labels = map[string]string{
	"dense":            "dense (float)",
	"wanda-absmax":     "Wanda, AbsMax",
	"wanda-slim":       "Wanda, SLiM-Quant",
	"optima-absmax":    "Wanda + OPTIMA, AbsMax",
	"optima-slim":      "Wanda + OPTIMA, SLiM-Quant",
	"lora-absmax":      "Wanda + OPTIMA + SLiM-LoRA 0.1, AbsMax",
	"lora-slim":        "Wanda + OPTIMA + SLiM-LoRA 0.1, SLiM-Quant",
	"wandalora-absmax": "Wanda + SLiM-LoRA 0.1, AbsMax",
	"wandalora-slim":   "Wanda + SLiM-LoRA 0.1, SLiM-Quant",
	// The wandalora-slim model evaluated with its adapter directory moved
	// away: the same weights, no adapter.
	"wandalora-slim-noadapter": "the same, adapter removed",
}

type evalFile struct {
	Perplexity float64 `json:"perplexity"`
	Windows    int     `json:"windows"`
	Seqlen     int     `json:"seqlen"`
}

type reportFile struct {
	Totals struct {
		Compress *struct {
			Pruned     float64 `json:"err_pruned"`
			Quantized  float64 `json:"err_quantized"`
			Adapter    float64 `json:"err_adapter"`
			Bytes      int64   `json:"bytes"`
			DenseBytes int64   `json:"dense_bytes"`
		} `json:"compress"`
	} `json:"totals"`
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Render writes the table of the results in dir to w.
func Render(w io.Writer, dir string) error {
	fmt.Fprintln(w, "| row | WikiText-2 ppl | err pruned | err quantized | err adapter | linears MiB (fp16 MiB) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, row := range Rows {
		var e evalFile
		if err := readJSON(filepath.Join(dir, row+".eval.json"), &e); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(w, "| %s | not run | | | | |\n", Labels[row])
				continue
			}
			return err
		}
		if row == "dense" {
			fmt.Fprintf(w, "| %s | %.2f | | | | |\n", Labels[row], e.Perplexity)
			continue
		}
		base, noAdapter := strings.CutSuffix(row, "-noadapter")
		var r reportFile
		if err := readJSON(filepath.Join(dir, base+".report.json"), &r); err != nil {
			return err
		}
		c := r.Totals.Compress
		if c == nil {
			return fmt.Errorf("%s: report without compression totals", row)
		}
		const mib = 1 << 20
		if noAdapter {
			fmt.Fprintf(w, "| %s | %.2f | %.4f | %.4f | (removed) | |\n", Labels[row], e.Perplexity, c.Pruned, c.Quantized)
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %.4f | %.4f | %.4f | %.1f (%.1f) |\n", Labels[row], e.Perplexity,
			c.Pruned, c.Quantized, c.Adapter, float64(c.Bytes)/mib, float64(c.DenseBytes)/mib)
	}
	return nil
}

func main() {
	dir := flag.String("results", "bench/slim/results/small", "results directory of run.sh")
	flag.Parse()
	if err := Render(os.Stdout, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}
