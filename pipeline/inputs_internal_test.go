package pipeline

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
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
