package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
)

// TestLayerSelectors runs SparseGPT, Thanos and ADMM through the CLI (the
// Beam pipeline) with each update mode and checks the report: the pattern
// holds, the update lowers the error below masking (own, optima) or equals
// it (none), and the layer-wide selectors prune half of every layer.
func TestLayerSelectors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, update, pattern string
		params                  []string
	}{
		{"sparsegpt", "own", "", []string{"--method-param", "blocksize=16"}},
		{"sparsegpt", "optima", "2:4", nil},
		{"thanos", "own", "2:4", []string{"--method-param", "blocksize=16"}},
		{"thanos", "none", "", nil},
		{"admm", "own", "", []string{"--method-param", "iters=6", "--method-param", "prune_iters=4"}},
	} {
		t.Run(tc.method+"-"+tc.update+"-"+tc.pattern, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m")
			args := f.pruneArgs(out, append([]string{"--threads", "2"}, tc.params...)...)
			if tc.pattern != "" {
				args = f.patternArgs(out, tc.pattern)
				args = append(args, tc.params...)
			}
			args[indexOf(args, "--method")+1] = tc.method
			args[indexOf(args, "--update")+1] = tc.update
			mustOptima(t, args...)
			raw, err := os.ReadFile(filepath.Join(out, prune.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Config  prune.Config          `json:"config"`
				Linears []report.LinearReport `json:"linears"`
				Totals  report.Totals         `json:"totals"`
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Config.Method != tc.method || rep.Config.Update != tc.update || len(rep.Linears) != 14 {
				t.Fatalf("report: method %q update %q, %d linears", rep.Config.Method, rep.Config.Update, len(rep.Linears))
			}
			for _, l := range rep.Linears {
				// SparseGPT's reference threshold prunes k+1 per block.
				if math.Abs(l.Sparsity-0.5) > 0.05 {
					t.Errorf("%s: sparsity %g", l.Name, l.Sparsity)
				}
				switch tc.update {
				case "none":
					if l.ErrAfter != l.ErrBefore {
						t.Errorf("%s: none changed the error %g → %g", l.Name, l.ErrBefore, l.ErrAfter)
					}
				default:
					if !(l.ErrAfter < l.ErrBefore) {
						t.Errorf("%s: %s error %g not below masking %g", l.Name, tc.update, l.ErrAfter, l.ErrBefore)
					}
				}
				if !(l.Damping >= 0.01) {
					t.Errorf("%s: damping %g not reported", l.Name, l.Damping)
				}
			}
			if tc.pattern == "2:4" {
				stdout, _ := mustOptima(t, "sparsity", "--model", out, "--json")
				var sp report.SparsityReport
				if err := json.Unmarshal([]byte(stdout), &sp); err != nil {
					t.Fatal(err)
				}
				if !sp.NM24 {
					t.Errorf("model is not 2:4")
				}
			}
		})
	}
	// --update own with a selector that has no update of its own.
	_, _, err := optima(t, f.pruneArgs(filepath.Join(t.TempDir(), "x"), "--update", "own")...)
	if err == nil || !strings.Contains(err.Error(), "no weight update of its own") {
		t.Errorf("wanda --update own: %v", err)
	}
}
