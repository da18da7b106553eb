package calib

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// byteTok is a byte-level tokenizer: one id per byte.
type byteTok struct{}

func (byteTok) Encode(text string) []int32 {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids
}

func (byteTok) Decode(ids []int32) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return string(b)
}
func (byteTok) VocabSize() int { return 256 }
func (byteTok) BOS() int32     { return -1 }
func (byteTok) EOS() int32     { return -1 }
func (byteTok) AddBOS() bool   { return false }

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadJSONL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string // substring; "" means success
	}{
		{"two docs", `{"text":"a b"}` + "\n" + `{"text":"c","url":"x"}` + "\n", []string{"a b", "c"}, ""},
		{"no final newline, blank lines, CRLF", "\n" + `{"text":"a"}` + "\r\n\n" + `{"text":"\u00e9\n"}`, []string{"a", "é\n"}, ""},
		{"empty text kept", `{"text":""}`, []string{""}, ""},
		{"empty file", "", nil, ""},
		{"missing text", `{"text":"a"}` + "\n" + `{"body":"b"}`, nil, "line 2: no \"text\" field"},
		{"null text", `{"text":null}`, nil, "line 1: \"text\" is not a string"},
		{"number text", "\n\n" + `{"text":3}`, nil, "line 3: \"text\" is not a string"},
		{"bad json", `{"text":"a"}` + "\n" + `{"text":`, nil, "line 2:"},
		{"array", `["a"]`, nil, "line 1:"},
		// A UTF-8 byte order mark (Windows editors write one) starts only
		// the file; one later is not whitespace and stays an error.
		{"leading BOM", "\uFEFF" + `{"text":"a"}` + "\n" + `{"text":"b"}`, []string{"a", "b"}, ""},
		{"BOM only", "\uFEFF", nil, ""},
		{"BOM then blank line", "\uFEFF\n" + `{"text":"a"}`, []string{"a"}, ""},
		{"BOM on line 2", `{"text":"a"}` + "\n\uFEFF" + `{"text":"b"}`, nil, "line 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "c.jsonl", []byte(tt.in))
			got, err := ReadJSONL(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, p, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("docs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadJSONLGzipAndMissing(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintln(zw, `{"text":"gz one"}`)
	fmt.Fprintln(zw, `{"text":"gz two"}`)
	zw.Close()
	p := writeFile(t, "c4.json.gz", buf.Bytes())
	got, err := ReadJSONL(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gz one", "gz two"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	missing := filepath.Join(t.TempDir(), "nope.jsonl")
	if _, err := ReadJSONL(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want one naming %s", err, missing)
	}
}

func FuzzParseJSONL(f *testing.F) {
	f.Add([]byte(`{"text":"a"}` + "\n" + `{"text":"b\u0000"}`))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"text":1}`))
	f.Add([]byte("\uFEFF" + `{"text":"bom"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := parseJSONL(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parsed must survive a write/read round trip.
		var buf bytes.Buffer
		for _, d := range docs {
			b, _ := json.Marshal(map[string]string{"text": d})
			buf.Write(b)
			buf.WriteByte('\n')
		}
		again, err := parseJSONL(&buf)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		// encoding/json replaces invalid UTF-8 with U+FFFD on Marshal, so
		// compare after the same replacement.
		want := make([]string, len(docs))
		for i, d := range docs {
			want[i] = strings.ToValidUTF8(d, "\uFFFD")
		}
		if len(docs) == 0 {
			want = nil
		}
		if diff := cmp.Diff(want, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// testDocs returns n documents of random lengths in [1, maxLen] made of
// letters (never the separator).
func testDocs(r *rand.Rand, n, maxLen int) []string {
	docs := make([]string, n)
	for i := range docs {
		b := make([]byte, 1+r.IntN(maxLen))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		docs[i] = string(b)
	}
	return docs
}

func TestWindowsCoversStream(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	docs := testDocs(r, 40, 30) // many docs shorter than a window
	docs = append(docs, "", "") // empty docs are dropped
	const seqlen = 16
	total := 0
	for _, d := range docs {
		if d != "" {
			total += len(d) + len(Separator)
		}
	}
	total -= len(Separator)
	nwin := total / seqlen
	all, err := Windows(docs, byteTok{}, nwin, seqlen, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != nwin {
		t.Fatalf("got %d windows, want %d", len(all), nwin)
	}
	// Taking every window gives the stream's prefix: the joined documents in
	// a shuffled order.
	var stream strings.Builder
	for _, w := range all {
		if len(w) != seqlen {
			t.Fatalf("window of %d tokens, want %d", len(w), seqlen)
		}
		stream.WriteString(byteTok{}.Decode(w))
	}
	parts := strings.Split(stream.String(), Separator)
	rest := slices.Clone(docs[:40])
	for i, p := range parts {
		last := i == len(parts)-1
		k := slices.IndexFunc(rest, func(d string) bool { return d == p || (last && strings.HasPrefix(d, p)) })
		if k < 0 {
			t.Fatalf("stream part %d %q is not one of the documents", i, p)
		}
		rest = slices.Delete(rest, k, k+1)
	}
	if slices.Equal(parts[:5], docs[:5]) {
		t.Errorf("documents were not shuffled")
	}

	// A smaller sample draws from the same stream (the shuffle comes first):
	// distinct windows, in stream order.
	for seed := range uint64(10) {
		all, err := Windows(docs, byteTok{}, nwin, seqlen, seed)
		if err != nil {
			t.Fatal(err)
		}
		few, err := Windows(docs, byteTok{}, 5, seqlen, seed)
		if err != nil {
			t.Fatal(err)
		}
		pos := -1
		for _, w := range few {
			k := slices.IndexFunc(all[pos+1:], func(a []int32) bool { return slices.Equal(a, w) })
			if k < 0 {
				t.Fatalf("seed %d: window %v not in the stream after position %d", seed, w, pos)
			}
			pos += 1 + k
		}
	}
}

func TestWindowsDeterministicAndSeeded(t *testing.T) {
	docs := testDocs(rand.New(rand.NewPCG(3, 4)), 200, 50)
	a, err := Windows(docs, byteTok{}, 8, 32, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Windows(docs, byteTok{}, 8, 32, 42)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed differs:\n%s", diff)
	}
	c, _ := Windows(docs, byteTok{}, 8, 32, 43)
	if cmp.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same windows")
	}
	// The input is not modified.
	if diff := cmp.Diff(testDocs(rand.New(rand.NewPCG(3, 4)), 200, 50), docs); diff != "" {
		t.Errorf("docs modified:\n%s", diff)
	}
	// Windows are fresh slices.
	a[0][0] = -1
	if b[0][0] == -1 {
		t.Errorf("results share memory")
	}
}

func TestWindowsErrors(t *testing.T) {
	docs := []string{strings.Repeat("x", 100)}
	tests := []struct {
		name             string
		nsamples, seqlen int
		want             []string
	}{
		{"zero samples", 0, 10, []string{"--nsamples"}},
		{"negative samples", -3, 10, []string{"--nsamples"}},
		{"seqlen 1", 2, 1, []string{"--seqlen"}},
		{"too few tokens", 11, 10, []string{"100 tokens", "110 tokens", "--nsamples=11", "--seqlen=10"}},
		{"too long seqlen", 1, 101, []string{"100 tokens", "101 tokens", "--seqlen=101"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Windows(docs, byteTok{}, tt.nsamples, tt.seqlen, 0)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
	if w, err := Windows(docs, byteTok{}, 10, 10, 0); err != nil || len(w) != 10 {
		t.Errorf("exactly enough tokens: %d windows, err %v", len(w), err)
	}
}

func TestShard(t *testing.T) {
	mk := func(n int) [][]int32 {
		w := make([][]int32, n)
		for i := range w {
			w[i] = []int32{int32(i)}
		}
		return w
	}
	tests := []struct {
		n, shards int
		sizes     []int
	}{
		{0, 3, nil},
		{1, 3, []int{1}},
		{10, 3, []int{4, 3, 3}},
		{10, 5, []int{2, 2, 2, 2, 2}},
		{10, 1, []int{10}},
		{7, 7, []int{1, 1, 1, 1, 1, 1, 1}},
		{8, 20, []int{1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.n, tt.shards), func(t *testing.T) {
			w := mk(tt.n)
			got := Shard(w, tt.shards)
			var sizes []int
			var flat [][]int32
			for _, s := range got {
				sizes = append(sizes, len(s))
				flat = append(flat, s...)
			}
			if diff := cmp.Diff(tt.sizes, sizes); diff != "" {
				t.Errorf("sizes (-want +got):\n%s", diff)
			}
			if tt.n > 0 && !cmp.Equal(w, flat) {
				t.Errorf("shards do not concatenate to the input")
			}
			if len(got) > 1 {
				// Appending to a shard must not clobber the next one.
				_ = append(got[0], []int32{99})
				if got[1][0][0] == 99 {
					t.Errorf("shards overlap in capacity")
				}
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Shard(_, 0) did not panic")
		}
	}()
	Shard(mk(2), 0)
}
