package mask

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMaskCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, sz := range [][2]int{{0, 0}, {1, 1}, {3, 5}, {4, 16}, {7, 9}} {
		m := NewMask(sz[0], sz[1])
		for i := range m.Pruned {
			m.Pruned[i] = r.IntN(2) == 0
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := 13 + (sz[0]*sz[1]+7)/8; len(b) != want {
			t.Errorf("%v: %d bytes, want %d", sz, len(b), want)
		}
		var got Mask
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, &got); diff != "" {
			t.Errorf("%v: round trip (-want +got):\n%s", sz, diff)
		}
	}
}

func TestMaskCodecErrors(t *testing.T) {
	good, _ := (&Mask{Rows: 1, Cols: 3, Pruned: []bool{true, false, true}}).MarshalBinary()
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"short", good[:5], "header"},
		{"magic", mod(func(b []byte) { b[1] = 'X' }), "magic"},
		{"version", mod(func(b []byte) { b[4] = 9 }), "version"},
		{"padding", mod(func(b []byte) { b[13] |= 0x80 }), "padding"},
		{"huge", mod(func(b []byte) { b[8], b[12] = 0xff, 0xff }), "exceeds"},
		{"length", append(bytes.Clone(good), 0), "want 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var m Mask
			if err := m.UnmarshalBinary(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one with %q", err, tt.want)
			}
		})
	}
	if _, err := (&Mask{Rows: 2, Cols: 2, Pruned: make([]bool, 3)}).MarshalBinary(); err == nil {
		t.Errorf("inconsistent mask marshalled")
	}
}

func FuzzMaskUnmarshal(f *testing.F) {
	good, _ := (&Mask{Rows: 2, Cols: 5, Pruned: make([]bool, 10)}).MarshalBinary()
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Mask
		if err := m.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-marshal differs")
		}
	})
}
