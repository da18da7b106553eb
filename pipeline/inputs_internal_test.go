package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/stages/prune"
)

// TestFileIDLargeFile: above fullHashLimit a file's identity is its size,
// modification time and the hash of its head; a change in the head, in the
// size or in the time changes it.
func TestFileIDLargeFile(t *testing.T) {
	defer func(n int64) { fullHashLimit = n }(fullHashLimit)
	fullHashLimit = headHashBytes
	p := filepath.Join(t.TempDir(), "model.gguf")
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 2*headHashBytes)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	stamp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(b []byte, mtime time.Time) inputID {
		t.Helper()
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		id, err := fileID(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	base := write(data, stamp)
	if !base.Head || base.ModTimeNS != stamp.UnixNano() || base.Size != int64(len(data)) {
		t.Fatalf("identity %+v: want a head hash, the modification time and the size", base)
	}
	if again := write(data, stamp); again != base {
		t.Errorf("same file, same time: %+v, want %+v", again, base)
	}
	head := append([]byte(nil), data...)
	head[10] ^= 1
	if id := write(head, stamp); id == base {
		t.Errorf("a changed head kept the identity")
	}
	if id := write(data, stamp.Add(time.Second)); id == base {
		t.Errorf("a new modification time kept the identity")
	}
	if id := write(data[:len(data)-4], stamp); id == base {
		t.Errorf("a shorter file kept the identity")
	}
	small := write(data[:100], stamp)
	if small.Head || small.ModTimeNS != 0 {
		t.Errorf("a small file's identity %+v: want the whole-file hash, no time", small)
	}
}

// TestFileIDLargeObject: above fullHashLimit a gs:// object's identity is
// its size, the hash of its head and GCS's CRC32C of the whole object, so
// a byte changed past the head changes it and the same bytes written again
// keep it (GCS emulator).
func TestFileIDLargeObject(t *testing.T) {
	defer func(n int64) { fullHashLimit = n }(fullHashLimit)
	fullHashLimit = headHashBytes
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	const p = "gs://bkt/model.gguf"
	r := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 2*headHashBytes)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	write := func(b []byte) inputID {
		t.Helper()
		if err := fileio.WriteFile(ctx, p, b); err != nil {
			t.Fatal(err)
		}
		id, err := fileID(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	base := write(data)
	if !base.Head || base.CRC32C == "" || base.ModTimeNS != 0 || base.Size != int64(len(data)) {
		t.Fatalf("identity %+v: want a head hash, the object's CRC32C and the size", base)
	}
	if want := fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))); base.CRC32C != want {
		t.Errorf("CRC32C %s, want %s", base.CRC32C, want)
	}
	if again := write(data); again != base {
		t.Errorf("same bytes written again: %+v, want %+v", again, base)
	}
	tail := append([]byte(nil), data...)
	tail[len(tail)-1] ^= 1
	if id := write(tail); id == base {
		t.Errorf("a byte changed past the head kept the identity %+v", id)
	}
}

// TestWarnStaleWork: a work directory made with the same configuration from
// the same input paths, identified otherwise (here as an optima before
// CRC32C identified a large gs:// model: no crc32c), is named in a warning,
// with the input that differs; the run's own directory, one of another
// configuration, one of other input paths and a directory that is not a
// work directory are not. Local and gs:// work roots.
func TestWarnStaleWork(t *testing.T) {
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	cfg := &prune.Config{Method: "wanda", Sparsity: 0.5, NSamples: 4, SeqLen: 16}
	other := *cfg
	other.Sparsity = 0.6
	inputs := []inputID{
		{Path: "gs://m/model.gguf", Size: 3 << 20, SHA256: "aa", Head: true, CRC32C: "0badf00d"},
		{Path: "gs://m/c4.jsonl", Size: 10, SHA256: "bb"},
	}
	old := append([]inputID(nil), inputs...)
	old[0].CRC32C = ""
	elsewhere := append([]inputID(nil), old...)
	elsewhere[1].Path = "gs://m/other.jsonl"
	for _, root := range []string{filepath.Join(t.TempDir(), "work"), "gs://bkt/work"} {
		t.Run(root[:2], func(t *testing.T) {
			key := workKey(cfg, inputs)
			write := func(name string, c *prune.Config, in []inputID) {
				t.Helper()
				if _, err := newWork(fileio.Join(root, name), c, in); err != nil {
					t.Fatal(err)
				}
			}
			write(key, cfg, inputs)
			write(workKey(cfg, old), cfg, old)
			write(workKey(&other, old), &other, old)
			write(workKey(cfg, elsewhere), cfg, elsewhere)
			write("not-a-work-key", cfg, old)
			var buf bytes.Buffer
			warnStaleWork(ctx, root, key, cfg, inputs, slog.New(slog.NewTextHandler(&buf, nil)))
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
				!strings.Contains(lines[0], "dir="+fileio.Join(root, workKey(cfg, old))) || !strings.HasSuffix(lines[0], " inputs=gs://m/model.gguf") {
				t.Errorf("log:\n%s\nwant one warning naming %s and gs://m/model.gguf only", buf.String(), fileio.Join(root, workKey(cfg, old)))
			}
		})
	}
}
