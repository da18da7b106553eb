package cuda_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/kernels/kerneltest"
)

// gpu returns a backend on device 0, or skips the test when no GPU is usable
// (OPTIMA_REQUIRE_GPU=1 makes that a failure, for GPU machines).
func gpu(t *testing.T, opts cuda.Options) *cuda.Backend {
	t.Helper()
	if err := cuda.Available(); err != nil {
		if os.Getenv("OPTIMA_REQUIRE_GPU") == "1" {
			t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	b, err := cuda.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestConformance(t *testing.T) {
	b := gpu(t, cuda.Options{})
	name, libs := b.DeviceName()
	t.Logf("device %q (%s), libraries %v", name, b.Capabilities().SIMD, libs)
	kerneltest.Run(t, b)
	requireDeviceBatched(t, b)
}

// TestUnavailable checks the error path: without a usable GPU, Available and
// New return an error wrapping ErrUnavailable that names what is missing; with
// one, both succeed.
func TestUnavailable(t *testing.T) {
	errA := cuda.Available()
	b, errN := cuda.New(cuda.Options{})
	if errA == nil {
		if errN != nil {
			t.Fatalf("Available() = nil but New: %v", errN)
		}
		b.Close()
		return
	}
	if os.Getenv("OPTIMA_REQUIRE_GPU") == "1" {
		t.Fatalf("OPTIMA_REQUIRE_GPU=1 but %v", errA)
	}
	for _, err := range []error{errA, errN} {
		if !errors.Is(err, cuda.ErrUnavailable) {
			t.Errorf("error %v does not wrap ErrUnavailable", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "lib") && !strings.Contains(msg, "device") && !strings.Contains(msg, "cuInit") {
			t.Errorf("error %q names neither the library nor the device", msg)
		}
	}
	if b != nil {
		t.Errorf("New returned a backend with error %v", errN)
	}
}

func TestDeviceBadOrdinal(t *testing.T) {
	gpu(t, cuda.Options{}) // skips without a GPU
	if _, err := cuda.New(cuda.Options{Device: 1 << 20}); !errors.Is(err, cuda.ErrUnavailable) {
		t.Errorf("New(Device: 1<<20) error = %v, want ErrUnavailable", err)
	}
}

func TestTimeSgemm(t *testing.T) {
	b := gpu(t, cuda.Options{})
	for _, tf32 := range []bool{false, true} {
		s, err := b.TimeSgemm(2048, 2048, 2048, 3, tf32)
		if err != nil {
			t.Fatal(err)
		}
		if !(s > 0) {
			t.Errorf("TimeSgemm(tf32=%v) = %v s", tf32, s)
		}
		t.Logf("SGEMM 2048³ tf32=%v: %.3g ms, %.1f TFLOP/s", tf32, s*1e3, 2*2048*2048*2048/s/1e12)
	}
	free, total, err := b.MemInfo()
	if err != nil || free == 0 || free > total {
		t.Errorf("MemInfo = %d, %d, %v", free, total, err)
	}
}

// TestCholeskyBatchedChunks runs the batched Cholesky cases with a chunk cap
// of 20000 bytes, so every batch of more than a few small matrices is split
// into several cuSOLVER calls (n = 33: two matrices per chunk; n ≥ 50: one).
func TestCholeskyBatchedChunks(t *testing.T) {
	b := gpu(t, cuda.Options{})
	defer cuda.SetMaxBatchBytes(20000)()
	kerneltest.RunBatched(t, b)
	requireDeviceBatched(t, b)
}

// TestCholeskyBatchedLoop runs the batched Cholesky cases with
// CholeskyLoopAbove 4 (matrices of n ≥ 5 through the Dpotrf/Dpotrs loop on
// the device, n = 1 through DpotrfBatched), with the default chunks and with
// 20000-byte chunks.
func TestCholeskyBatchedLoop(t *testing.T) {
	b := gpu(t, cuda.Options{CholeskyLoopAbove: 4})
	t.Run("default", func(t *testing.T) { kerneltest.RunBatched(t, b) })
	t.Run("chunks", func(t *testing.T) {
		defer cuda.SetMaxBatchBytes(20000)()
		kerneltest.RunBatched(t, b)
	})
	requireDeviceBatched(t, b)
}

// requireDeviceBatched fails the test when a cuSOLVER error moved b's
// batched Cholesky to the CPU: the cases above would then have passed on
// the CPU backend and tested nothing of cuSOLVER's batched routines.
func requireDeviceBatched(t *testing.T, b *cuda.Backend) {
	t.Helper()
	if err := b.BatchedErr(); err != nil {
		t.Fatalf("the batched Cholesky fell back to the CPU: %v", err)
	}
}
