package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/optima-llm/optima/model"
)

// TensorSparsity is the zero count of one linear weight [Rows, Cols].
type TensorSparsity struct {
	Name     string  `json:"name"`
	Rows     int     `json:"rows"`
	Cols     int     `json:"cols"`
	Zeros    int64   `json:"zeros"`
	Sparsity float64 `json:"sparsity"`
	// Groups is the number of groups of 4 consecutive input weights checked
	// (0 when Cols is not a multiple of 4); BadGroups those with fewer than 2
	// zeros. NM24 is true when Cols is a multiple of 4 and BadGroups is 0,
	// i.e. the tensor satisfies 2:4 sparsity.
	Groups    int64 `json:"groups_of_4"`
	BadGroups int64 `json:"bad_groups_2of4"`
	NM24      bool  `json:"nm_2_4"`
}

// SparsityReport audits the sparsity of a checkpoint's linear weights.
type SparsityReport struct {
	Path    string           `json:"path"`
	Tensors []TensorSparsity `json:"tensors"`
	// Params and Zeros sum over Tensors; Sparsity = Zeros/Params.
	Params   int64   `json:"params"`
	Zeros    int64   `json:"zeros"`
	Sparsity float64 `json:"sparsity"`
	// NM24 is true when every tensor satisfies 2:4 (and there is one).
	NM24 bool `json:"nm_2_4"`
	// Selection says how the linear weights were chosen: SelectFamily or
	// SelectNames.
	Selection string `json:"selection"`
}

// Values of SparsityReport.Selection.
const (
	// SelectFamily: the weights of the family's Linears(i) for every block
	// (the linears the pipeline prunes).
	SelectFamily = "family linears"
	// SelectNames: every 2-D tensor whose name passes IsLinearWeight (the
	// architecture has no registered family).
	SelectNames = "name rule"
)

// IsLinearWeight reports whether a tensor name can be a prunable linear
// weight when the architecture's family is unknown: it ends in ".weight"
// and is not an embedding (a name containing "embed"), the LM head
// ("lm_head") or one of OPT's embedding projections ("project_in",
// "project_out", which no block contains and the pipeline does not prune).
// Sparsity also requires it to be 2-D.
func IsLinearWeight(name string) bool {
	if !strings.HasSuffix(name, ".weight") {
		return false
	}
	for _, s := range []string{"embed", "lm_head", "project_in.", "project_out."} {
		if strings.Contains(name, s) {
			return false
		}
	}
	return true
}

// linearWeights returns the names of src's prunable linear weights and the
// Selection used: the family's Linears over all blocks when model.New
// builds a family for src.Config() (the family package must be registered,
// e.g. by importing model/families), else the names that pass
// IsLinearWeight.
func linearWeights(src model.Source) ([]string, string) {
	if cfg := src.Config(); cfg != nil {
		if fam, err := model.New(cfg); err == nil {
			var names []string
			for i := range fam.NumBlocks() {
				for _, l := range fam.Linears(i) {
					names = append(names, l.Weight())
				}
			}
			slices.SortFunc(names, compareNatural)
			return names, SelectFamily
		}
	}
	var names []string
	for _, name := range src.Names() {
		if IsLinearWeight(name) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, compareNatural)
	return names, SelectNames
}

// compareNatural orders tensor names numeric-aware, so that
// model.layers.2 comes before model.layers.10: runs of ASCII digits compare
// by their value (of any length), other bytes as bytes (a byte and a digit
// run compare as the byte and the run's first digit). Names equal but for
// leading zeros put the first run with fewer zeros first, so only equal
// strings compare 0. It returns -1, 0 or +1, as strings.Compare.
func compareNatural(a, b string) int {
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	tie := 0 // the first difference in leading zeros
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if !isDigit(a[i]) || !isDigit(b[j]) {
			if a[i] != b[j] {
				return cmp.Compare(a[i], b[j])
			}
			i++
			j++
			continue
		}
		si, sj := i, j
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		ra, rb := strings.TrimLeft(a[si:i], "0"), strings.TrimLeft(b[sj:j], "0")
		if c := cmp.Compare(len(ra), len(rb)); c != 0 {
			return c
		}
		if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
		if tie == 0 {
			tie = cmp.Compare(i-si, j-sj)
		}
	}
	if c := cmp.Compare(len(a)-i, len(b)-j); c != 0 {
		return c
	}
	return tie
}

// Sparsity counts the zeros of every prunable linear weight of src, sorted
// by name in numeric-aware order (model.layers.2 before model.layers.10):
// the weights of the family's Linears(i) for every block when the
// architecture of src.Config() has a registered family (model.New), else
// each tensor whose name passes IsLinearWeight. Tensors are loaded one at a
// time and counted when they are 2-D. An exact zero (including −0) counts.
// Load errors (including a linear of the family that the checkpoint lacks)
// are returned; they name the tensor.
func Sparsity(src model.Source) (SparsityReport, error) {
	names, sel := linearWeights(src)
	rep := SparsityReport{Path: src.Path(), Tensors: []TensorSparsity{}, Selection: sel}
	for _, name := range names {
		t, err := src.Load(name)
		if err != nil {
			return SparsityReport{}, fmt.Errorf("sparsity report: %w", err)
		}
		if len(t.Shape) != 2 {
			continue
		}
		ts := countZeros(name, t.Data, t.Shape[0], t.Shape[1])
		rep.Tensors = append(rep.Tensors, ts)
		rep.Params += int64(len(t.Data))
		rep.Zeros += ts.Zeros
	}
	if rep.Params > 0 {
		rep.Sparsity = float64(rep.Zeros) / float64(rep.Params)
	}
	rep.NM24 = len(rep.Tensors) > 0
	for _, t := range rep.Tensors {
		rep.NM24 = rep.NM24 && t.NM24
	}
	return rep, nil
}

// countZeros fills a TensorSparsity for w ([rows, cols] row-major).
func countZeros(name string, w []float32, rows, cols int) TensorSparsity {
	if len(w) != rows*cols {
		panic(fmt.Sprintf("report: tensor %s has %d values for shape [%d, %d]", name, len(w), rows, cols))
	}
	ts := TensorSparsity{Name: name, Rows: rows, Cols: cols}
	nm := cols > 0 && cols%4 == 0
	for i := 0; i < len(w); i += 4 {
		z := int64(0)
		for _, v := range w[i:min(i+4, len(w))] {
			if v == 0 {
				z++
			}
		}
		ts.Zeros += z
		if nm {
			ts.Groups++
			if z < 2 {
				ts.BadGroups++
			}
		}
	}
	if len(w) > 0 {
		ts.Sparsity = float64(ts.Zeros) / float64(len(w))
	}
	ts.NM24 = nm && ts.BadGroups == 0
	return ts
}

// WriteJSON writes r as indented JSON.
func (r SparsityReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write sparsity report: %w", err)
	}
	return nil
}

// WriteText writes r as an aligned table, one line per tensor and a total.
func (r SparsityReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tshape\tzeros\tsparsity\t2:4")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%d×%d\t%d\t%.2f%%\t%s\n", t.Name, t.Rows, t.Cols, t.Zeros, 100*t.Sparsity, nmText(t))
	}
	all := "no"
	if r.NM24 {
		all = "yes"
	}
	fmt.Fprintf(tw, "total (%d tensors)\t%d params\t%d\t%.2f%%\t%s\n", len(r.Tensors), r.Params, r.Zeros, 100*r.Sparsity, all)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write sparsity report: %w", err)
	}
	return nil
}

func nmText(t TensorSparsity) string {
	switch {
	case t.Groups == 0:
		return "n/a"
	case t.NM24:
		return "yes"
	default:
		return fmt.Sprintf("no (%d of %d groups)", t.BadGroups, t.Groups)
	}
}
