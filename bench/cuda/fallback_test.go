package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/optima-llm/optima/kernels/cpu"
)

// TestRunFallbackCPU runs --fallback-bench on kernels/cpu at tiny shapes:
// every row takes the fallback, the batched and one-by-one variants' weights
// are equal (the CPU backend's batched Cholesky is the same arithmetic), |S| is
// half the row, and the JSON report holds both Gram timings and the split
// of the batched fallback's time.
func TestRunFallbackCPU(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fallback.json")
	be := cpu.New(2)
	if err := runFallback(be, nil, "cpu", 64, 96, 256, 24, 3, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep fallbackResult
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Fallback != 24 || rep.Kept != 32 {
		t.Errorf("fallback rows %d, |S| %d; want 24, 32", rep.Fallback, rep.Kept)
	}
	if len(rep.Variants) != 2 || rep.Variants[0].Name != "one_by_one" || rep.Variants[1].Name != "batched" {
		t.Fatalf("variants %+v, want one_by_one and batched", rep.Variants)
	}
	for _, v := range rep.Variants {
		if v.MaxRelDiff != 0 || !(v.Sec > 0) {
			t.Errorf("variant %+v: want equal weights and a positive time", v)
		}
	}
	if sp := rep.Split; sp == nil || sp.N != 32 || sp.Batch != 24 || !(sp.BuildMs > 0) || !(sp.UploadMs > 0) || len(sp.CallMs) != 1 || !(sp.CallMs["batched"] > 0) {
		t.Errorf("split %+v: want |S| 32, 24 rows per call (all rows fit 256 MiB), positive times, one batched call time", sp)
	}
	if len(rep.Gram) != 2 || rep.Gram[0].In != 64 || rep.Gram[1].In != 96 || !(rep.Gram[1].Sec > 0) || !(rep.Gram[1].FloorSec > 0) {
		t.Errorf("gram timings %+v", rep.Gram)
	}
}
