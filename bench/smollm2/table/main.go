// Command table renders the SmolLM2 results of bench/smollm2/run.sh as a
// Markdown table (WikiText-2 perplexity and total relative reconstruction
// error per row) and draws the perplexities as one PNG bar chart with
// gonum/plot.
//
//	go run ./bench/smollm2/table -results bench/smollm2/results -windows 32 -png bench/smollm2/ppl.png
//
// For each row it reads RESULTS/ROW.eval.json (optima eval --json) and, except
// for dense, RESULTS/ROW.report.json (the prune report). The perplexity is
// exp of the mean of the first -windows window NLLs, so rows scored on more
// windows are compared on the same text. Rows whose files are missing are
// listed as missing, not dropped silently.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Rows is the table's row order: the Table 1 structure.
var Rows = []string{
	"dense",
	"wanda50-none", "wanda50-optima", "sgpt50-own", "sgpt50-optima", "thanos50-own", "thanos50-optima", "admm50-own",
	"wanda24-none", "wanda24-optima", "sgpt24-own", "sgpt24-optima", "thanos24-own", "thanos24-optima", "admm24-own",
}

// Label is the human name of a row, e.g. "SparseGPT 50% / own".
func Label(row string) string {
	if row == "dense" {
		return "dense"
	}
	sel, rest, _ := strings.Cut(row, "50-")
	pat := "50%"
	if rest == "" {
		sel, rest, _ = strings.Cut(row, "24-")
		pat = "2:4"
	}
	name := map[string]string{"wanda": "Wanda", "sgpt": "SparseGPT", "thanos": "Thanos", "admm": "ADMM"}[sel]
	if name == "" {
		name = sel
	}
	return fmt.Sprintf("%s %s / %s", name, pat, rest)
}

type evalFile struct {
	Perplexity float64   `json:"perplexity"`
	Windows    int       `json:"windows"`
	WindowNLL  []float64 `json:"window_nll"`
}

type reportFile struct {
	Linears []struct {
		Damping float64 `json:"damping"`
	} `json:"linears"`
	Totals struct {
		Sparsity  float64 `json:"sparsity"`
		ErrBefore float64 `json:"err_before"`
		ErrAfter  float64 `json:"err_after"`
		Seconds   float64 `json:"seconds"`
	} `json:"totals"`
}

// Result is one rendered row.
type Result struct {
	Row, Label string
	PPL        float64
	HasReport  bool
	Sparsity   float64
	ErrBefore  float64
	ErrAfter   float64
	MaxDamping float64
	Seconds    float64
}

// Load reads row's files under dir and computes its perplexity over the
// first windows windows. A missing eval file returns an error wrapping
// os.ErrNotExist.
func Load(dir, row string, windows int) (Result, error) {
	r := Result{Row: row, Label: Label(row)}
	raw, err := os.ReadFile(filepath.Join(dir, row+".eval.json"))
	if err != nil {
		return r, err
	}
	var ev evalFile
	if err := json.Unmarshal(raw, &ev); err != nil {
		return r, fmt.Errorf("%s.eval.json: %w", row, err)
	}
	if len(ev.WindowNLL) < windows {
		return r, fmt.Errorf("%s.eval.json: %d windows scored, want at least %d", row, len(ev.WindowNLL), windows)
	}
	var s float64
	for _, v := range ev.WindowNLL[:windows] {
		s += v
	}
	r.PPL = math.Exp(s / float64(windows))
	if row == "dense" {
		return r, nil
	}
	raw, err = os.ReadFile(filepath.Join(dir, row+".report.json"))
	if err != nil {
		return r, err
	}
	var rep reportFile
	if err := json.Unmarshal(raw, &rep); err != nil {
		return r, fmt.Errorf("%s.report.json: %w", row, err)
	}
	r.HasReport = true
	r.Sparsity, r.ErrBefore, r.ErrAfter, r.Seconds = rep.Totals.Sparsity, rep.Totals.ErrBefore, rep.Totals.ErrAfter, rep.Totals.Seconds
	for _, l := range rep.Linears {
		r.MaxDamping = max(r.MaxDamping, l.Damping)
	}
	return r, nil
}

// Markdown writes the table of res and a line naming the missing rows.
func Markdown(w io.Writer, res []Result, missing []string, windows int) {
	fmt.Fprintf(w, "| row | WikiText-2 ppl (%d windows) | sparsity | rel. error, mask only | rel. error, after update | max damping | seconds (Σ linears) |\n", windows)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range res {
		if !r.HasReport {
			fmt.Fprintf(w, "| %s | %.3f | — | — | — | — | — |\n", r.Label, r.PPL)
			continue
		}
		fmt.Fprintf(w, "| %s | %.3f | %.4f | %.5f | %.5f | %g | %.0f |\n", r.Label, r.PPL, r.Sparsity, r.ErrBefore, r.ErrAfter, r.MaxDamping, r.Seconds)
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "\nNot computed: %s.\n", strings.Join(missing, ", "))
	}
}

// Plot draws one bar per row (perplexity) into a PNG at path,
// written to a temporary name and renamed.
func Plot(res []Result, windows int, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("SmolLM2-135M, WikiText-2 perplexity (%d windows of 2048)", windows)
	p.Y.Label.Text = "perplexity"
	vals := make(plotter.Values, len(res))
	names := make([]string, len(res))
	for i, r := range res {
		vals[i] = r.PPL
		names[i] = strings.ReplaceAll(r.Label, " / ", "\n")
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(18))
	if err != nil {
		return err
	}
	p.Add(bars)
	p.NominalX(names...)
	p.Y.Min = 0
	tmp := strings.TrimSuffix(path, ".png") + ".tmp.png"
	if err := p.Save(vg.Length(max(8, len(res)))*vg.Inch, 5*vg.Inch, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	dir := flag.String("results", "bench/smollm2/results", "directory of ROW.eval.json and ROW.report.json")
	windows := flag.Int("windows", 32, "WikiText-2 windows per row")
	png := flag.String("png", "", "write the perplexity bar chart here (PNG)")
	flag.Parse()
	var res []Result
	var missing []string
	for _, row := range Rows {
		r, err := Load(*dir, row, *windows)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, row)
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "table:", err)
			os.Exit(1)
		}
		res = append(res, r)
	}
	Markdown(os.Stdout, res, missing, *windows)
	if *png != "" {
		if err := Plot(res, *windows, *png); err != nil {
			fmt.Fprintln(os.Stderr, "table:", err)
			os.Exit(1)
		}
	}
}
