package loader

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/hf"
	"github.com/optima-llm/optima/model/safetensors"
)

// upload copies every file under the local directory dir to the gs:// prefix.
func upload(t *testing.T, dir, prefix string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := fileio.CopyFile(context.Background(), filepath.Join(dir, e.Name()), fileio.Join(prefix, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func sameSource(t *testing.T, want, got model.Source) {
	t.Helper()
	if diff := cmp.Diff(want.Names(), got.Names()); diff != "" {
		t.Fatalf("names (-local +gcs):\n%s", diff)
	}
	if diff := cmp.Diff(want.Config(), got.Config()); diff != "" {
		t.Fatalf("config (-local +gcs):\n%s", diff)
	}
	for _, n := range want.Names() {
		a, err := want.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := got.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(a, b) {
			t.Fatalf("tensor %s differs between the local and the gs:// source", n)
		}
	}
	wt, err := want.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	gt, err := got.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	const text = "Hello world, pruning in one shot."
	if diff := cmp.Diff(wt.Encode(text), gt.Encode(text)); diff != "" {
		t.Fatalf("tokenizer (-local +gcs):\n%s", diff)
	}
}

func TestOpenRemote(t *testing.T) {
	gcstest.Start(t, "models")
	const fixture = "../gguf/testdata/tiny_llama.gguf"
	local, err := Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	dir := filepath.Join(t.TempDir(), "hf")
	tok, err := local.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ht := tok.(interface {
		HFTokenizerJSON() ([]byte, error)
		HFTokenizerConfigJSON() ([]byte, error)
	})
	extra := map[string][]byte{}
	if extra["tokenizer.json"], err = ht.HFTokenizerJSON(); err != nil {
		t.Fatal(err)
	}
	if extra["tokenizer_config.json"], err = ht.HFTokenizerConfigJSON(); err != nil {
		t.Fatal(err)
	}
	if err := hf.WriteModel(dir, local.Config(), local.Names(), local.Load, extra, hf.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fileio.CopyFile(context.Background(), fixture, "gs://models/tiny.gguf"); err != nil {
		t.Fatal(err)
	}
	upload(t, dir, "gs://models/hf/")

	t.Run("gguf", func(t *testing.T) {
		g, err := Open("gs://models/tiny.gguf")
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		sameSource(t, local, g)
	})
	t.Run("hf", func(t *testing.T) {
		h, err := Open("gs://models/hf")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		lh, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer lh.Close()
		sameSource(t, lh, h)
	})
	for _, tc := range []struct{ path, want string }{
		{"gs://models/none", "no such object"},
		{"gs://models/hf/config.json", "neither a GGUF"},
	} {
		if _, err := Open(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
}

// TestRemoteSafetensorsRanges reads a 16 MiB safetensors file from the GCS
// emulator tensor by tensor and checks that the reader fetched each tensor
// with one ranged request, never the whole file.
func TestRemoteSafetensorsRanges(t *testing.T) {
	gcstest.Start(t, "big")
	rng := rand.New(rand.NewPCG(1, 2))
	var ts []*model.Tensor
	for i, shape := range [][]int{{2048, 1536}, {1536, 1024}, {7, 3}} {
		d := make([]float32, shape[0]*shape[1])
		for j := range d {
			d[j] = rng.Float32()*2 - 1
		}
		ts = append(ts, &model.Tensor{Name: string(rune('a'+i)) + ".weight", Shape: shape, Data: d})
	}
	p := filepath.Join(t.TempDir(), "big.safetensors")
	if err := safetensors.WriteFile(p, ts, safetensors.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fileio.CopyFile(ctx, p, "gs://big/big.safetensors"); err != nil {
		t.Fatal(err)
	}
	r, err := fileio.OpenReaderAt(ctx, "gs://big/big.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.NewFile(r, "gs://big/big.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	header := fileio.RangedReads(r) // length prefix and JSON header
	for i := len(ts) - 1; i >= 0; i-- {
		got, err := f.Load(ts[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(got, ts[i]) {
			t.Fatalf("tensor %s read back differently", ts[i].Name)
		}
	}
	if n := fileio.RangedReads(r) - header; n != int64(len(ts)) || header != 2 {
		t.Errorf("ranged reads: %d for the header, %d for %d tensors; want 2 and one per tensor", header, n, len(ts))
	}
}
