package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/kernels/cuda"
)

// TestDeviceFlag: --device cpu is the default and stored as "" (the
// configuration hash of CPU runs is unchanged); --device cuda without a
// usable GPU fails before any work with an error naming the flag and what
// is missing (with a GPU it is accepted); an unknown device is rejected.
func TestDeviceFlag(t *testing.T) {
	for _, d := range []string{"", "cpu"} {
		if err := validateDevice(d); err != nil {
			t.Errorf("validateDevice(%q) = %v", d, err)
		}
	}
	if err := validateDevice("rocm"); err == nil || !strings.Contains(err.Error(), "--device rocm") {
		t.Errorf("validateDevice(rocm) = %v, want an unknown-device error", err)
	}
	gpuErr := cuda.Available()
	err := validateDevice("cuda")
	if gpuErr == nil {
		if err != nil {
			t.Errorf("GPU available but validateDevice(cuda) = %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "--device cuda") || !strings.Contains(err.Error(), "no usable GPU") {
		t.Fatalf("validateDevice(cuda) without a GPU = %v, want an error naming --device cuda and the missing GPU", err)
	}

	o := &pruneOptions{}
	o.cfg.Solve.Device = "cpu"
	o.calibSet = true
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	if o.cfg.Solve.Device != "" {
		t.Errorf("Complete left --device cpu as %q, want \"\"", o.cfg.Solve.Device)
	}

	// The whole command: rejected, nothing written.
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	_, _, err = optima(t, f.pruneArgs(out, "--device", "cuda")...)
	if err == nil || !strings.Contains(err.Error(), "--device cuda") {
		t.Fatalf("optima prune --device cuda without a GPU: error %v", err)
	}
}
