package main

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readNpy parses a NumPy 1.0 file written by the dump: it returns the header
// dictionary and the data bytes, failing the test on a malformed prefix or
// a data offset that is not a multiple of 64.
func readNpy(t *testing.T, path string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:8]) != "\x93NUMPY\x01\x00" {
		t.Fatalf("%s: bad magic %q", path, b[:min(len(b), 8)])
	}
	n := int(binary.LittleEndian.Uint16(b[8:10]))
	if (10+n)%64 != 0 || b[10+n-1] != '\n' {
		t.Fatalf("%s: header length %d: data offset %d not 64-aligned or no newline", path, n, 10+n)
	}
	return strings.TrimRight(string(b[10:10+n]), " \n"), b[10+n:]
}

func TestNpyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for _, tc := range []struct{ rows, cols int }{{1, 1}, {3, 5}, {7, 64}, {0, 4}} {
		f64 := make([]float64, tc.rows*tc.cols)
		f32 := make([]float32, tc.rows*tc.cols)
		bl := make([]bool, tc.rows*tc.cols)
		for i := range f64 {
			f64[i] = rng.NormFloat64() * 1e3
			f32[i] = float32(rng.NormFloat64())
			bl[i] = rng.IntN(2) == 0
		}
		shape := "(" + strconv.Itoa(tc.rows) + ", " + strconv.Itoa(tc.cols) + ")"
		p := filepath.Join(dir, "a.npy")
		if err := writeNpyFloat64(p, f64, tc.rows, tc.cols); err != nil {
			t.Fatal(err)
		}
		hdr, data := readNpy(t, p)
		if want := "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }"; hdr != want {
			t.Errorf("float64 header %q, want %q", hdr, want)
		}
		got64 := make([]float64, len(data)/8)
		for i := range got64 {
			got64[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
		if diff := cmp.Diff(f64, got64); diff != "" {
			t.Errorf("float64 %d×%d data (-want +got):\n%s", tc.rows, tc.cols, diff)
		}
		if err := writeNpyFloat32(p, f32, tc.rows, tc.cols); err != nil {
			t.Fatal(err)
		}
		hdr, data = readNpy(t, p)
		if !strings.Contains(hdr, "'<f4'") || !strings.Contains(hdr, shape) {
			t.Errorf("float32 header %q", hdr)
		}
		got32 := make([]float32, len(data)/4)
		for i := range got32 {
			got32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		if diff := cmp.Diff(f32, got32); diff != "" {
			t.Errorf("float32 data (-want +got):\n%s", diff)
		}
		if err := writeNpyBool(p, bl, tc.rows, tc.cols); err != nil {
			t.Fatal(err)
		}
		hdr, data = readNpy(t, p)
		if !strings.Contains(hdr, "'|b1'") || !strings.Contains(hdr, shape) {
			t.Errorf("bool header %q", hdr)
		}
		gotB := make([]bool, len(data))
		for i, c := range data {
			if c > 1 {
				t.Fatalf("bool byte %d = %d", i, c)
			}
			gotB[i] = c == 1
		}
		if diff := cmp.Diff(bl, gotB); diff != "" {
			t.Errorf("bool data (-want +got):\n%s", diff)
		}
	}
}

func TestNpyHeaderOneDim(t *testing.T) {
	h := npyHeader("<f4", 5)
	if got := strings.TrimRight(string(h[10:]), " \n"); got != "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }" {
		t.Errorf("header %q", got)
	}
}

func TestNewDumperRejectsUnknownType(t *testing.T) {
	if _, err := newDumper(t.TempDir(), "q_proj,lm_head"); err == nil || !strings.Contains(err.Error(), "lm_head") {
		t.Errorf("newDumper(lm_head) error %v, want one naming lm_head", err)
	}
	d, err := newDumper("", "anything")
	if d != nil || err != nil {
		t.Errorf("newDumper(\"\") = %v, %v; want nil, nil", d, err)
	}
}
