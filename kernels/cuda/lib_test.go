package cuda

import (
	"errors"
	"strings"
	"testing"
)

func TestOpenLibMissing(t *testing.T) {
	t.Setenv("OPTIMA_CUDA_LIB_DIR", t.TempDir())
	_, _, err := openLib("liboptima-no-such-lib.so.7", "liboptima-no-such-lib.so")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("openLib error = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"liboptima-no-such-lib.so.7", "OPTIMA_CUDA_LIB_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestGoString(t *testing.T) {
	b := cString("sm_90")
	if got := goString(uintptr(ptr(b))); got != "sm_90" {
		t.Errorf("goString(cString) = %q", got)
	}
	if got := goString(0); got != "" {
		t.Errorf("goString(0) = %q", got)
	}
}
