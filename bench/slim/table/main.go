// Command table renders bench/slim/run.sh's results as a Markdown table:
// per row the bit width, the quantization group, the adapter rank, the
// WikiText-2 perplexity, the report's total relative layer errors after
// pruning (mask + update), after quantization and after the adapter, and
// the memory of the compressed linears against float16 dense.
//
//	go run ./bench/slim/table -results bench/slim/results/full
//	go run ./bench/slim/table -results bench/slim/results/full -breakdown wanda-absmax
//
// For each row it reads RESULTS/ROW.eval.json (optima eval --json) and,
// except for dense, RESULTS/ROW.report.json (the prune report: its config
// gives the bit width, group size and adapter rank; totals.compress the
// errors and bytes). The issue's six rows are always listed ("not run"
// without files); the extra rows only when their files exist. A row named
// gN-ROW is ROW run with --group-size N (run.sh with PRUNE_FLAGS
// "--group-size N", results renamed with the prefix).
//
// -breakdown ROW prints instead, per kind of linear (q_proj … down_proj),
// its share of the Den-weighted total of each error: which linears the
// quantization error comes from.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Rows is the table's order: the issue's six rows, then the extra ones.
var Rows = []string{"dense", "wanda-absmax", "wanda-slim", "optima-absmax", "optima-slim", "lora-absmax", "lora-slim",
	"wandalora-absmax", "wandalora-slim", "wandalora-slim-noadapter"}

// issueRows are listed even when not run.
var issueRows = map[string]bool{"dense": true, "wanda-absmax": true, "wanda-slim": true, "optima-absmax": true,
	"optima-slim": true, "lora-absmax": true, "lora-slim": true}

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

// groupRow matches a group-quantized row: gN-ROW.
var groupRow = regexp.MustCompile(`^g([0-9]+)-(.+)$`)

type evalFile struct {
	Perplexity float64 `json:"perplexity"`
	Windows    int     `json:"windows"`
	Seqlen     int     `json:"seqlen"`
}

type compressErrors struct {
	Pruned    float64 `json:"err_pruned"`
	Quantized float64 `json:"err_quantized"`
	Adapter   float64 `json:"err_adapter"`
}

type reportFile struct {
	Config struct {
		Compress *struct {
			Quant *struct {
				Bits      int    `json:"bits"`
				Method    string `json:"method"`
				GroupSize int    `json:"group_size"`
			} `json:"quant"`
			LoRA *struct {
				Rank float64 `json:"rank"`
				Mode string  `json:"mode"`
			} `json:"lora"`
		} `json:"compress"`
	} `json:"config"`
	Linears []struct {
		Name     string  `json:"name"`
		Den      float64 `json:"den"`
		Compress *struct {
			compressErrors
			AdapterRank int `json:"adapter_rank"`
		} `json:"compress"`
	} `json:"linears"`
	Totals struct {
		Compress *struct {
			compressErrors
			Bytes      int64 `json:"bytes"`
			DenseBytes int64 `json:"dense_bytes"`
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

// rowsIn lists the rows to render: Rows (the extra ones only when dir has
// their eval file), then the group rows found in dir, in Rows' order of
// their base row and by group size. dir must be a directory.
func rowsIn(dir string) ([]string, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("-results %s: not a directory", dir)
	}
	has := func(row string) bool {
		_, err := os.Stat(filepath.Join(dir, row+".eval.json"))
		return err == nil
	}
	var rows []string
	for _, r := range Rows {
		if issueRows[r] || has(r) {
			rows = append(rows, r)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "g*-*.eval.json"))
	if err != nil {
		return nil, err
	}
	type g struct {
		row  string
		base int
		size int
	}
	var gs []g
	for _, f := range files {
		row := strings.TrimSuffix(filepath.Base(f), ".eval.json")
		m := groupRow.FindStringSubmatch(row)
		if m == nil {
			continue
		}
		i := slices.Index(Rows, m[2])
		if i < 0 {
			return nil, fmt.Errorf("%s: unknown row %q after the group prefix", f, m[2])
		}
		n, _ := strconv.Atoi(m[1])
		gs = append(gs, g{row, i, n})
	}
	slices.SortFunc(gs, func(a, b g) int { return cmp.Or(cmp.Compare(a.size, b.size), cmp.Compare(a.base, b.base)) })
	for _, x := range gs {
		rows = append(rows, x.row)
	}
	return rows, nil
}

// label is row's human name.
func label(row string) string {
	if m := groupRow.FindStringSubmatch(row); m != nil {
		return Labels[m[2]] + ", groups of " + m[1]
	}
	return Labels[row]
}

// Render writes the table of the results in dir to w, and below it the
// WikiText-2 windows the perplexities are over (or, when the rows differ,
// which rows were scored on which windows: their perplexities are then not
// comparable).
func Render(w io.Writer, dir string) (err error) {
	rows, err := rowsIn(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "| row | bits | scale | adapter rank | WikiText-2 ppl | err pruned | err quantized | err adapter | linears MiB (fp16 MiB) | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	const empty = " | | | | | |"
	// scored groups the rows' labels by the windows their perplexity is
	// over, in row order.
	var scored []struct{ how, rows string }
	defer func() {
		switch {
		case err != nil:
		case len(scored) == 1:
			fmt.Fprintf(w, "\nWikiText-2 perplexity over %s.\n", scored[0].how)
		case len(scored) > 1:
			var parts []string
			for _, g := range scored {
				parts = append(parts, g.rows+": "+g.how)
			}
			fmt.Fprintf(w, "\nRows were scored on different WikiText-2 windows, so their perplexities are not comparable: %s.\n", strings.Join(parts, "; "))
		}
	}()
	for _, row := range rows {
		var e evalFile
		if err := readJSON(filepath.Join(dir, row+".eval.json"), &e); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(w, "| %s | | | | not run%s\n", label(row), empty)
				continue
			}
			return err
		}
		how := "unknown windows"
		if e.Windows > 0 {
			how = fmt.Sprintf("%d windows of %d tokens", e.Windows, e.Seqlen)
		}
		if i := slices.IndexFunc(scored, func(g struct{ how, rows string }) bool { return g.how == how }); i >= 0 {
			scored[i].rows += ", " + label(row)
		} else {
			scored = append(scored, struct{ how, rows string }{how, label(row)})
		}
		if row == "dense" {
			fmt.Fprintf(w, "| %s | 16 | | | %.2f%s\n", label(row), e.Perplexity, empty)
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
		bits, scale, rank := settings(&r)
		const mib = 1 << 20
		if noAdapter {
			fmt.Fprintf(w, "| %s | %s | %s | (removed) | %.2f | %.4f | %.4f | (removed) | | |\n", label(row), bits, scale, e.Perplexity, c.Pruned, c.Quantized)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %.4f | %.4f | %.4f | %.1f (%.1f) | %.3f |\n", label(row), bits, scale, rank, e.Perplexity,
			c.Pruned, c.Quantized, c.Adapter, float64(c.Bytes)/mib, float64(c.DenseBytes)/mib, float64(c.Bytes)/float64(c.DenseBytes))
	}
	return nil
}

// settings are the report's bit width, quantization scale ("tensor" or
// "group N") and adapter rank ("0.1 (19–57)": the fraction and the range of
// the linears' ranks; "–" without an adapter).
func settings(r *reportFile) (bits, scale, rank string) {
	bits, scale, rank = "16", "–", "–"
	cfg := r.Config.Compress
	if cfg == nil {
		return bits, scale, rank
	}
	if q := cfg.Quant; q != nil {
		bits = strconv.Itoa(q.Bits)
		scale = "tensor"
		if q.GroupSize > 0 {
			scale = fmt.Sprintf("group %d", q.GroupSize)
		}
	}
	if lo := cfg.LoRA; lo != nil {
		lo0, hi := 0, 0
		for _, l := range r.Linears {
			if l.Compress == nil || l.Compress.AdapterRank == 0 {
				continue
			}
			k := l.Compress.AdapterRank
			if lo0 == 0 || k < lo0 {
				lo0 = k
			}
			hi = max(hi, k)
		}
		rank = strconv.FormatFloat(lo.Rank, 'g', -1, 64)
		switch {
		case lo0 == 0:
		case lo0 == hi:
			rank += fmt.Sprintf(" (%d)", lo0)
		default:
			rank += fmt.Sprintf(" (%d–%d)", lo0, hi)
		}
	}
	return bits, scale, rank
}

// kindOf is the last component of a linear's name (q_proj, down_proj, …).
func kindOf(name string) string { return name[strings.LastIndexByte(name, '.')+1:] }

// Breakdown writes, for the row's report in dir, each kind of linear's
// share of the Den-weighted totals: Den share, and its contribution
// Σ err·Den / ΣDen to err pruned, err quantized and err adapter (the
// contributions of all kinds add up to the totals), and the kind's largest
// single-linear relative error after quantization.
func Breakdown(w io.Writer, dir, row string) error {
	var r reportFile
	if err := readJSON(filepath.Join(dir, row+".report.json"), &r); err != nil {
		return err
	}
	type acc struct {
		den, p, q, a, worst float64
		worstName           string
	}
	by := map[string]*acc{}
	var kinds []string
	var den float64
	for _, l := range r.Linears {
		if l.Compress == nil {
			continue
		}
		k := kindOf(l.Name)
		if by[k] == nil {
			by[k] = &acc{}
			kinds = append(kinds, k)
		}
		x := by[k]
		x.den += l.Den
		x.p += l.Compress.Pruned * l.Den
		x.q += l.Compress.Quantized * l.Den
		x.a += l.Compress.Adapter * l.Den
		if l.Compress.Quantized > x.worst {
			x.worst, x.worstName = l.Compress.Quantized, l.Name
		}
		den += l.Den
	}
	if den == 0 {
		return fmt.Errorf("%s: report without compressed linears", row)
	}
	fmt.Fprintf(w, "| %s: linear | Den share | err pruned | err quantized | err adapter | worst err quantized |\n", label(row))
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var tp, tq, ta float64
	for _, k := range kinds {
		x := by[k]
		tp, tq, ta = tp+x.p/den, tq+x.q/den, ta+x.a/den
		fmt.Fprintf(w, "| %s | %.3f | %.4f | %.4f | %.4f | %.3f (%s) |\n", k, x.den/den, x.p/den, x.q/den, x.a/den, x.worst, x.worstName)
	}
	fmt.Fprintf(w, "| all | 1 | %.4f | %.4f | %.4f | |\n", tp, tq, ta)
	return nil
}

func main() {
	dir := flag.String("results", "bench/slim/results/full", "results directory of run.sh")
	breakdown := flag.String("breakdown", "", "instead of the table, break ROW's errors down by kind of linear")
	flag.Parse()
	var err error
	if *breakdown != "" {
		err = Breakdown(os.Stdout, *dir, *breakdown)
	} else {
		err = Render(os.Stdout, *dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}
