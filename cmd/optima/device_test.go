package main

import (
	"encoding/json"
	"math"
	"os"
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

// TestForwardDeviceFlags: prune's --forward-device and eval's --device
// default to cpu (stored as "" for prune, so the configuration hash of CPU
// runs is unchanged, while cuda changes it); cuda without a usable GPU fails
// in Validate, before any work (no output or work directory), with an error
// naming the flag; an unknown device is rejected. With a GPU, eval --device
// cuda runs and agrees with the CPU within 1e-5.
func TestForwardDeviceFlags(t *testing.T) {
	if err := validateDeviceFlag("--forward-device", "rocm"); err == nil || !strings.Contains(err.Error(), "--forward-device rocm") {
		t.Errorf("validateDeviceFlag(--forward-device, rocm) = %v, want an unknown-device error naming the flag", err)
	}
	o := &pruneOptions{}
	o.cfg.ForwardDevice = "cpu"
	o.calibSet = true
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	if o.cfg.ForwardDevice != "" {
		t.Errorf("Complete left --forward-device cpu as %q, want \"\"", o.cfg.ForwardDevice)
	}
	h := o.cfg.Hash()
	o.cfg.ForwardDevice = "cuda"
	if o.cfg.Hash() == h {
		t.Error("--forward-device cuda does not change the configuration hash")
	}

	f := newFixture(t)
	gpuErr := cuda.Available()
	if gpuErr != nil {
		out := filepath.Join(t.TempDir(), "out")
		_, _, err := optima(t, f.pruneArgs(out, "--forward-device", "cuda")...)
		if err == nil || !strings.Contains(err.Error(), "--forward-device cuda") || !strings.Contains(err.Error(), "no usable GPU") {
			t.Errorf("optima prune --forward-device cuda without a GPU: error %v, want one naming --forward-device cuda and the missing GPU", err)
		}
		for _, p := range []string{out, out + ".work"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("rejected prune left %s behind (stat: %v)", p, err)
			}
		}
		_, _, err = optima(t, "eval", "--model", f.model, "--seqlen", "32", "--data-dir", f.data, "--no-progress", "--device", "cuda")
		if err == nil || !strings.Contains(err.Error(), "--device cuda") || !strings.Contains(err.Error(), "no usable GPU") {
			t.Errorf("optima eval --device cuda without a GPU: error %v, want one naming --device cuda and the missing GPU", err)
		}
	}
	_, _, err := optima(t, "eval", "--model", f.model, "--seqlen", "32", "--data-dir", f.data, "--no-progress", "--device", "tpu")
	if err == nil || !strings.Contains(err.Error(), "--device tpu") {
		t.Errorf("optima eval --device tpu: error %v, want an unknown-device error naming --device", err)
	}
	if gpuErr != nil {
		if os.Getenv("OPTIMA_REQUIRE_GPU") == "1" {
			t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", gpuErr)
		}
		return
	}
	ppl := func(device string) float64 {
		stdout, _ := mustOptima(t, "eval", "--model", f.model, "--seqlen", "32", "--data-dir", f.data, "--no-progress",
			"--json", "--threads", "2", "--device", device)
		var res evalResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("eval --device %s --json: %v\n%s", device, err, stdout)
		}
		return res.Perplexity
	}
	pc, pg := ppl("cpu"), ppl("cuda")
	if d := math.Abs(pg-pc) / pc; !(d <= 1e-5) {
		t.Errorf("eval perplexity: --device cuda %v, cpu %v (%.3g relative), want ≤ 1e-5", pg, pc, d)
	}
}
