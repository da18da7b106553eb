package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/model/gguf"
	"github.com/optima-llm/optima/model/hf"
)

func TestOpen(t *testing.T) {
	const fixture = "../gguf/testdata/tiny_llama.gguf"
	g, err := Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, ok := g.(*gguf.Model); !ok {
		t.Fatalf("GGUF opened as %T", g)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "hf")
	if err := hf.WriteModel(dir, g.Config(), g.Names(), g.Load, nil, hf.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, ok := h.(*hf.Dir); !ok {
		t.Fatalf("directory opened as %T", h)
	}
	if diff := cmp.Diff(g.Names(), h.Names()); diff != "" {
		t.Errorf("names differ: %s", diff)
	}
	// Sources are safe for concurrent loads (run with -race).
	var wg sync.WaitGroup
	for _, n := range g.Names() {
		wg.Go(func() {
			a, _ := g.Load(n)
			b, err := h.Load(n)
			if err != nil || !cmp.Equal(a, b) {
				t.Errorf("%s differs after GGUF → HF: %v", n, err)
			}
			if s, ok := h.(*hf.Dir).Shape(n); !ok || !cmp.Equal(s, b.Shape) {
				t.Errorf("%s: Shape %v, Load %v", n, s, b.Shape)
			}
		})
	}
	wg.Wait()

	txt := filepath.Join(base, "x.bin")
	os.WriteFile(txt, []byte("PK\x03\x04 not a model"), 0o644)
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	short := filepath.Join(base, "short")
	os.WriteFile(short, []byte("GG"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{txt, "neither a GGUF file"},
		{short, "neither a GGUF file"},
		{empty, "directory without config.json"},
		{filepath.Join(dir, "config.json"), "not its config.json"},
	} {
		_, err := Open(tc.path)
		if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %v, want ErrUnknownFormat containing %q", tc.path, err, tc.want)
		}
	}
	if _, err := Open(filepath.Join(base, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: %v", err)
	}
	bad := filepath.Join(base, "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x07\x00\x00\x00"), 0o644)
	if _, err := Open(bad); !errors.Is(err, gguf.ErrFormat) || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("bad GGUF: %v", err)
	}
}
