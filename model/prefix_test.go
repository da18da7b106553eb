package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKVCachePutPrefix(t *testing.T) {
	c := NewKVCache(2)
	c.Put(1, 0, 2, []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8})
	c.Put(1, 2, 2, []float32{9, 10}, []float32{11, 12})
	c.Put(1, 1, 2, []float32{-3, -4}, []float32{-7, -8}) // overwrite in place
	k, v := c.Prefix(1, 3, 2)
	if diff := cmp.Diff([]float32{1, 2, -3, -4, 9, 10}, k); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float32{5, 6, -7, -8, 11, 12}, v); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	c.CopyPrefix(0, 1, 2)
	k, v = c.Prefix(0, 2, 2)
	if diff := cmp.Diff([]float32{1, 2, -3, -4, 5, 6, -7, -8}, append(k, v...)); diff != "" {
		t.Errorf("copied prefix (-want +got):\n%s", diff)
	}
	for name, f := range map[string]func(){
		"copy beyond stored":   func() { c.CopyPrefix(0, 1, 4) },
		"copy before any put":  func() { NewKVCache(2).CopyPrefix(0, 1, 1) },
		"prefix beyond stored": func() { c.Prefix(1, 4, 2) },
		"empty slot":           func() { NewKVCache(1).Prefix(0, 1, 2) },
		"slot outside":         func() { c.Put(2, 0, 2, []float32{1, 2}, []float32{1, 2}) },
		"ragged rows":          func() { c.Put(0, 0, 2, []float32{1, 2, 3}, []float32{1, 2, 3}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
