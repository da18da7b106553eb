package fileio_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
)

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		elems           []string
		join, dir, base string
	}{
		{[]string{"gs://b", "x", "y.bin"}, "gs://b/x/y.bin", "gs://b/x", "y.bin"},
		{[]string{"gs://b/x/", "/y"}, "gs://b/x/y", "gs://b/x", "y"},
		{[]string{"gs://b"}, "gs://b", "gs://b", "b"},
		{[]string{"/tmp/a", "b", "c.json"}, "/tmp/a/b/c.json", "/tmp/a/b", "c.json"},
		{[]string{"rel", "x"}, "rel/x", "rel", "x"},
	} {
		j := fileio.Join(tc.elems...)
		if j != tc.join || fileio.Dir(j) != tc.dir || fileio.Base(j) != tc.base {
			t.Errorf("Join(%q) = %q (Dir %q, Base %q), want %q (%q, %q)", tc.elems, j, fileio.Dir(j), fileio.Base(j), tc.join, tc.dir, tc.base)
		}
	}
	for _, u := range []string{"gs://", "gs:///x", "/local"} {
		if _, _, err := fileio.ParseGCS(u); err == nil {
			t.Errorf("ParseGCS(%q): no error", u)
		}
	}
}

func FuzzParseGCS(f *testing.F) {
	f.Add("b", "a/b.bin")
	f.Add("bucket", "")
	f.Fuzz(func(t *testing.T, bucket, object string) {
		u := "gs://" + bucket + "/" + object
		b, o, err := fileio.ParseGCS(u)
		if err != nil {
			if bucket != "" && !strings.Contains(bucket, "/") {
				t.Fatalf("ParseGCS(%q): %v", u, err)
			}
			return
		}
		if !strings.Contains(bucket, "/") && (b != bucket || o != object) {
			t.Fatalf("ParseGCS(%q) = %q, %q", u, b, o)
		}
		if fileio.Join(u) != fileio.Clean(u) || !fileio.IsRemote(fileio.Dir(u)) {
			t.Fatalf("Join/Clean/Dir disagree on %q", u)
		}
	})
}

// roots runs f against a local temporary directory and a bucket of a GCS
// emulator, so that both implementations meet the same expectations.
func roots(t *testing.T, f func(t *testing.T, root string)) {
	t.Run("local", func(t *testing.T) { f(t, t.TempDir()) })
	t.Run("gcs", func(t *testing.T) {
		gcstest.Start(t, "optima-test")
		f(t, "gs://optima-test/run")
	})
}

func TestFileOps(t *testing.T) {
	ctx := context.Background()
	roots(t, func(t *testing.T, root string) {
		p := fileio.Join(root, "sub", "a.json")
		if ok, err := fileio.Exists(ctx, p); err != nil || ok {
			t.Fatalf("Exists before write: %v, %v", ok, err)
		}
		if _, err := fileio.ReadFile(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("ReadFile of a missing file: %v, want fs.ErrNotExist", err)
		}
		want := []byte(`{"x": 1}`)
		for _, name := range []string{"a.json", "b.json", "c.bin"} {
			if err := fileio.WriteFile(ctx, fileio.Join(root, "sub", name), want); err != nil {
				t.Fatal(err)
			}
		}
		got, err := fileio.ReadFile(ctx, p)
		if err != nil || !cmp.Equal(got, want) {
			t.Fatalf("ReadFile = %q, %v; want %q", got, err, want)
		}
		if n, err := fileio.Size(ctx, p); err != nil || n != int64(len(want)) {
			t.Fatalf("Size = %d, %v", n, err)
		}
		if ok, err := fileio.IsDir(ctx, fileio.Join(root, "sub")); err != nil || !ok {
			t.Fatalf("IsDir(sub) = %v, %v", ok, err)
		}
		if ok, err := fileio.IsDir(ctx, fileio.Join(root, "none")); err != nil || ok {
			t.Fatalf("IsDir(none) = %v, %v", ok, err)
		}
		m, err := fileio.Glob(ctx, fileio.Join(root, "sub", "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range m {
			names = append(names, fileio.Base(x))
		}
		if diff := cmp.Diff([]string{"a.json", "b.json"}, names); diff != "" {
			t.Errorf("Glob (-want +got):\n%s", diff)
		}
		if err := fileio.Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := fileio.Remove(ctx, p); err != nil {
			t.Fatalf("Remove of a removed file: %v", err)
		}
		if err := fileio.RemoveAll(ctx, fileio.Join(root, "sub")); err != nil {
			t.Fatal(err)
		}
		if ok, _ := fileio.IsDir(ctx, fileio.Join(root, "sub")); ok {
			t.Error("sub still exists after RemoveAll")
		}
		// CopyFile streams a local file to either kind of root.
		src := filepath.Join(t.TempDir(), "src")
		os.WriteFile(src, want, 0o644)
		if err := fileio.CopyFile(ctx, src, fileio.Join(root, "copy")); err != nil {
			t.Fatal(err)
		}
		if got, _ := fileio.ReadFile(ctx, fileio.Join(root, "copy")); !cmp.Equal(got, want) {
			t.Errorf("CopyFile: read back %q", got)
		}
	})
}

// TestReaderAt reads random ranges of a 6 MiB file, the case of one tensor
// of a large safetensors file, and checks the bytes and, on GCS, that every
// ReadAt was one ranged request.
func TestReaderAt(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 6<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	roots(t, func(t *testing.T, root string) {
		p := fileio.Join(root, "big.bin")
		if err := fileio.WriteFile(ctx, p, data); err != nil {
			t.Fatal(err)
		}
		r, err := fileio.OpenReaderAt(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != int64(len(data)) {
			t.Fatalf("Size = %d, want %d", r.Size(), len(data))
		}
		const reads = 20
		for range reads {
			off := rng.IntN(len(data))
			n := rng.IntN(64 << 10)
			buf := make([]byte, n)
			got, err := r.ReadAt(buf, int64(off))
			wantN := min(n, len(data)-off)
			if got != wantN || (wantN < n && err != io.EOF) || (wantN == n && err != nil) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, wantN)
			}
			if !cmp.Equal(buf[:got], data[off:off+got]) {
				t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", n, off)
			}
		}
		if fileio.IsRemote(p) {
			if n := fileio.RangedReads(r); n != reads {
				t.Errorf("RangedReads = %d, want %d (one GET per ReadAt)", n, reads)
			}
		}
		if _, err := fileio.OpenReaderAt(ctx, fileio.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenReaderAt(missing): %v, want fs.ErrNotExist", err)
		}
	})
}

// TestWriteFileMode: a local file written by WriteFile (and CopyFile) is
// readable by others as os.WriteFile(p, data, 0o644) makes it, not 0600
// as its temporary file was: model directories hold such files (the PEFT
// adapter_config.json).
func TestWriteFileMode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func(p string) error
	}{
		{"WriteFile", func(p string) error { return fileio.WriteFile(ctx, p, []byte("x")) }},
		{"CopyFile", func(p string) error { return fileio.CopyFile(ctx, src, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := tc.write(p); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != 0o644 {
				t.Errorf("mode %v, want -rw-r--r--", got)
			}
		})
	}
}
