package prune

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestWriteSums: the checksums WriteTensorsSum and WriteHiddenSum return,
// hashed while writing, are the SHA-256 of the files as stored, under a
// local and a gs:// root, and CheckSHA256 accepts them.
func TestWriteSums(t *testing.T) {
	gcstest.Start(t, "sums")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, 3*5*4)
	for i := range x {
		x[i] = rng.Float32()
	}
	ts := []*model.Tensor{
		{Name: "b.weight", Shape: []int{4, 3}, Data: make([]float32, 12)},
		{Name: "a.weight", Shape: []int{2, 2}, Data: []float32{1, -2, 0, 3.5}},
	}
	for i := range ts[0].Data {
		ts[0].Data[i] = rng.Float32()
	}
	for name, root := range map[string]string{"local": t.TempDir(), "gcs": "gs://sums/w"} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				file  string
				write func(p string) (string, error)
			}{
				{"block-000.safetensors", func(p string) (string, error) { return WriteTensorsSum(p, ts) }},
				{"hidden-b001-s000.bin", func(p string) (string, error) { return WriteHiddenSum(p, x, 3, 5, 4) }},
			} {
				p := fileio.Join(root, tc.file)
				sum, err := tc.write(p)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := fileio.ReadFile(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if want := sha256Hex(raw); sum != want {
					t.Errorf("%s: sum %s, the stored file's SHA-256 is %s", tc.file, sum, want)
				}
				r, err := fileio.OpenReaderAt(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckSHA256(r, r.Size(), sum); err != nil {
					t.Errorf("%s: CheckSHA256 of the file as written: %v", tc.file, err)
				}
				r.Close()
			}
		})
	}
}

// errReaderAt fails every read.
type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestCheckSHA256(t *testing.T) {
	data := make([]byte, 3*checkBuf+17) // several reads
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := sha256Hex(data)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct {
		name string
		r    interface {
			ReadAt([]byte, int64) (int, error)
		}
		size    int64
		want    string
		wantErr string
	}{
		{"match", bytes.NewReader(data), int64(len(data)), sum, ""},
		{"no checksum recorded", bytes.NewReader(flipped), int64(len(flipped)), "", ""},
		{"flipped bit", bytes.NewReader(flipped), int64(len(flipped)), sum, "checksum mismatch"},
		{"one byte short", bytes.NewReader(data), int64(len(data) - 1), sum, "checksum mismatch"},
		{"read error", errReaderAt{}, 10, sum, "disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSHA256(tc.r, tc.size, tc.want)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSHA256 = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckSHA256 = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckShardHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.bin")
	if err := WriteHidden(p, make([]float32, 2*3*4), 2, 3, 4); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ref := ShardRef{NSeq: 2, SeqLen: 3, Hidden: 4}
	dims := func(nseq uint32) []byte {
		b := bytes.Clone(raw)
		binary.LittleEndian.PutUint32(b[8:], nseq)
		return b
	}
	// 2³¹×2³¹×1 float32 is 2⁶⁴ bytes, 0 in uint64: a header-only file
	// must not pass as its size.
	huge := []byte(hiddenMagic)
	huge = binary.LittleEndian.AppendUint32(huge, 1<<31)
	huge = binary.LittleEndian.AppendUint32(huge, 1<<31)
	huge = binary.LittleEndian.AppendUint32(huge, 1)
	for _, tc := range []struct {
		name    string
		data    []byte
		ref     ShardRef
		wantErr string
	}{
		{"ok", raw, ref, ""},
		{"empty", nil, ref, "shorter than the header"},
		{"header cut", raw[:hiddenHeader-1], ref, "shorter than the header"},
		{"magic", append([]byte("OPTHID02"), raw[8:]...), ref, "not a hidden-state shard"},
		{"dims differ from the marker", dims(1), ref, "the done marker says 2×3×4"},
		{"marker differs", raw, ShardRef{NSeq: 2, SeqLen: 3, Hidden: 5}, "header 2×3×4"},
		{"truncated", raw[:len(raw)-4], ref, "want 116"},
		{"extra bytes", append(bytes.Clone(raw), 0), ref, "want 116"},
		{"size overflows", huge, ShardRef{NSeq: 1 << 31, SeqLen: 1 << 31, Hidden: 1}, "float32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckShardHeader(bytes.NewReader(tc.data), int64(len(tc.data)), tc.ref)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckShardHeader = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckShardHeader = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzCheckShardHeader: CheckShardHeader never panics, and accepts a file
// exactly when ReadHidden reads it with the same dimensions.
func FuzzCheckShardHeader(f *testing.F) {
	var ok bytes.Buffer
	ok.WriteString(hiddenMagic)
	for _, d := range []uint32{1, 2, 1} {
		binary.Write(&ok, binary.LittleEndian, d)
	}
	ok.Write(make([]byte, 8))
	f.Add(ok.Bytes(), 1, 2, 1)
	f.Add([]byte(hiddenMagic), 0, 0, 0)
	f.Add([]byte{}, 1, 1, 1)
	huge := []byte(hiddenMagic)
	for _, d := range []uint32{1 << 31, 1 << 31, 1} {
		huge = binary.LittleEndian.AppendUint32(huge, d)
	}
	f.Add(huge, 1<<31, 1<<31, 1)
	f.Fuzz(func(t *testing.T, data []byte, nseq, seqlen, hidden int) {
		ref := ShardRef{NSeq: nseq, SeqLen: seqlen, Hidden: hidden}
		err := CheckShardHeader(bytes.NewReader(data), int64(len(data)), ref)
		if len(data) > 1<<16 {
			return
		}
		p := filepath.Join(t.TempDir(), "s.bin")
		if werr := os.WriteFile(p, data, 0o644); werr != nil {
			t.Fatal(werr)
		}
		_, n, s, h, rerr := ReadHidden(p)
		readOK := rerr == nil && n == nseq && s == seqlen && h == hidden
		if (err == nil) != readOK {
			t.Fatalf("CheckShardHeader = %v, ReadHidden = %d×%d×%d, %v (ref %d×%d×%d)", err, n, s, h, rerr, nseq, seqlen, hidden)
		}
	})
}

// BenchmarkChecksum measures SHA-256 over a 100 MB buffer against writing
// the same buffer to a local file (WriteFileAtomic: write, fsync, rename),
// and the write with its checksum (WriteHiddenSum's cost over WriteHidden).
// Metrics: MB/s of each, and (on write) sha256/write, the hashing time as a
// fraction of the write's.
//
//	nice go test ./stages/prune/ -run XXX -bench Checksum -benchtime 5x
func BenchmarkChecksum(b *testing.B) {
	buf := make([]byte, 100<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	p := filepath.Join(b.TempDir(), "x.bin")
	x := make([]float32, (len(buf)-hiddenHeader)/4)
	var hashNS, writeNS float64
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(buf)
		}
		hashNS = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("write", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := WriteFileAtomic(p, buf); err != nil {
				b.Fatal(err)
			}
		}
		writeNS = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if hashNS > 0 {
			b.ReportMetric(hashNS/writeNS, "sha256/write")
		}
	})
	b.Run("WriteHidden", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := WriteHidden(p, x, 1, 1, len(x)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteHiddenSum", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if _, err := WriteHiddenSum(p, x, 1, 1, len(x)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckSHA256", func(b *testing.B) {
		sum := sha256Hex(buf)
		if err := WriteFileAtomic(p, buf); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			r, err := fileio.OpenReaderAt(context.Background(), p)
			if err != nil {
				b.Fatal(err)
			}
			if err := CheckSHA256(r, r.Size(), sum); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}

// TestPropagateShardSum: the shard PropagateShard writes is referenced with
// the SHA-256 of the file as stored.
func TestPropagateShardSum(t *testing.T) {
	fam, w, x, nseq, seqlen := tinyBlock(t)
	hidden := fam.Config().HiddenSize
	work := Work{Dir: t.TempDir()}
	in := ShardRef{Block: 0, Index: 1, Path: work.HiddenPath(0, 1), NSeq: nseq, SeqLen: seqlen, Hidden: hidden}
	var err error
	if in.SHA256, err = WriteHiddenSum(in.Path, x, nseq, seqlen, hidden); err != nil {
		t.Fatal(err)
	}
	next, err := PropagateShard(cpu.New(1), fam, 0, w, in, work)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(next.Path)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Hex(raw); next.SHA256 != want || next.SHA256 == in.SHA256 {
		t.Errorf("next shard's sha256 %q, the file's is %s (the input's %s)", next.SHA256, want, in.SHA256)
	}
}
