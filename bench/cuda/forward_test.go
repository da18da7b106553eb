package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// TestRunForwardCPU runs --forward-bench with kernels/cpu standing in for
// the GPU on one 256-token sequence: the routed forward's output equals the
// CPU's exactly, and the JSON report is written. With 2 threads (route
// "threads": GemmRouteFor(2), the 64 FLOP/B floor) and with route
// "default" (DefaultGemmRoute, also 64 FLOP/B), the five 256-token linears
// whose intensity exceeds 64 FLOP/B (q, o, gate, up, down; k and v are at
// 46) go to the "GPU" and the rest (k, v, and the attention's two products
// for each of 9 heads × 2 blocks of 128 query rows) to the CPU; with 32
// threads (GemmRouteFor(32): 256 FLOP/B) nothing is routed. An unknown
// route name is an error.
func TestRunForwardCPU(t *testing.T) {
	for _, tc := range []struct {
		threads      int
		route        string
		routed, kept int
	}{
		{2, "threads", 5, 2 + 2*9*2},
		{32, "default", 5, 2 + 2*9*2},
		{32, "threads", 0, 7 + 2*9*2},
	} {
		out := filepath.Join(t.TempDir(), "forward.json")
		if err := runForward(cpu.New(2), "cpu", tc.threads, tc.route, 1, 256, 1, 1, false, out); err != nil {
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
		name := fmt.Sprintf("%d threads, route %s", tc.threads, tc.route)
		if rep.MaxRelDiff != 0 {
			t.Errorf("%s: max rel diff %g, want 0 with the CPU as the GPU", name, rep.MaxRelDiff)
		}
		if rep.RoutedCalls != tc.routed || rep.CPUCalls != tc.kept {
			t.Errorf("%s: routed %d calls, kept %d on the CPU; want %d and %d", name, rep.RoutedCalls, rep.CPUCalls, tc.routed, tc.kept)
		}
		wantFrac := func(f float64) bool { return f > 0.5 && f < 1 }
		if tc.routed == 0 {
			wantFrac = func(f float64) bool { return f == 0 }
		}
		if !(rep.CPUSec > 0) || !(rep.GPUGemmSec > 0) || !wantFrac(rep.RoutedFrac) || rep.RouteName != tc.route {
			t.Errorf("%s: report %+v: want positive times, routed FLOP fraction in line with %d routed calls, route name %q", name, rep, tc.routed, tc.route)
		}
	}
	if err := runForward(cpu.New(1), "cpu", 1, "fast", 1, 16, 1, 1, false, ""); err == nil || !strings.Contains(err.Error(), "--forward-route") {
		t.Errorf("route \"fast\": error %v, want one naming --forward-route", err)
	}
}
