package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// TestRunForwardCPU runs --forward-bench with kernels/cpu standing in for
// the GPU on one 256-token sequence: the routed forward's output equals the
// CPU's exactly, DefaultGemmRoute sends the five 256-token linears whose
// intensity exceeds 64 FLOP/B (q, o, gate, up, down; k and v are at 46) to
// the "GPU" and the rest (k, v, and the attention's two products for each
// of 9 heads × 2 blocks of 128 query rows) to the CPU,
// and the JSON report is written.
func TestRunForwardCPU(t *testing.T) {
	out := filepath.Join(t.TempDir(), "forward.json")
	if err := runForward(cpu.New(2), "cpu", 2, 1, 256, 1, 1, false, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep forwardResult
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.MaxRelDiff != 0 {
		t.Errorf("max rel diff %g, want 0 with the CPU as the GPU", rep.MaxRelDiff)
	}
	if rep.RoutedCalls != 5 || rep.CPUCalls != 2+2*9*2 {
		t.Errorf("routed %d calls, kept %d on the CPU; want 5 and 38", rep.RoutedCalls, rep.CPUCalls)
	}
	if !(rep.CPUSec > 0) || !(rep.GPUGemmSec > 0) || !(rep.RoutedFrac > 0.5 && rep.RoutedFrac < 1) {
		t.Errorf("report %+v: want positive times and most of the FLOPs routed", rep)
	}
}
