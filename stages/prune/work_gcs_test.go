package prune

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/model"
)

// TestWorkFilesBothRoots writes and reads a work directory's files (hidden
// shards, a block's tensors, done markers) under a local root and a gs://
// root of a GCS emulator, and checks that both give the same resume state.
func TestWorkFilesBothRoots(t *testing.T) {
	gcstest.Start(t, "work")
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 2*3*4)
	for i := range x {
		x[i] = rng.Float32()
	}
	w := &model.Tensor{Name: "model.layers.0.mlp.down_proj.weight", Shape: []int{2, 3}, Data: []float32{1, 0, -2, 0, 3.5, 0}}
	cfg := &Config{}
	for name, root := range map[string]string{"local": t.TempDir(), "gcs": "gs://work/runs"} {
		t.Run(name, func(t *testing.T) {
			work, err := NewWork(root, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteHidden(work.HiddenPath(1, 0), x, 2, 3, 4); err != nil {
				t.Fatal(err)
			}
			gx, nseq, seqlen, hidden, err := ReadHidden(work.HiddenPath(1, 0))
			if err != nil || nseq != 2 || seqlen != 3 || hidden != 4 || !cmp.Equal(gx, x) {
				t.Fatalf("ReadHidden = %v (%d %d %d), %v", gx, nseq, seqlen, hidden, err)
			}
			if err := WriteTensors(work.BlockPath(0), []*model.Tensor{w}); err != nil {
				t.Fatal(err)
			}
			got, err := ReadTensors(work.BlockPath(0))
			if err != nil || !cmp.Equal(got[w.Name], w) {
				t.Fatalf("ReadTensors = %v, %v", got, err)
			}
			if d, err := work.Done(2); err != nil || len(d) != 0 {
				t.Fatalf("Done before any marker = %v, %v", d, err)
			}
			// Block 0's marker, and the shard entering block 1 exists.
			next := []ShardRef{{Block: 1, Index: 0, Path: work.HiddenPath(1, 0), NSeq: 2, SeqLen: 3, Hidden: 4}}
			if err := work.MarkDone(BlockDone{Block: 0, Weights: work.BlockPath(0), Next: next}); err != nil {
				t.Fatal(err)
			}
			d, err := work.Done(2)
			if err != nil || len(d) != 1 || d[0].Weights != work.BlockPath(0) {
				t.Fatalf("Done after block 0 = %+v, %v", d, err)
			}
			// Without the shard entering block 1, block 0 cannot be resumed from.
			if err := removeForTest(work.HiddenPath(1, 0)); err != nil {
				t.Fatal(err)
			}
			if d, err := work.Done(2); err != nil || len(d) != 0 {
				t.Fatalf("Done with block 1's input missing = %+v, %v", d, err)
			}
		})
	}
}

func removeForTest(p string) error {
	return fileio.Remove(context.Background(), p)
}
