package pipeline

import (
	"context"
	"log/slog"
	"testing"

	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/families"
	"github.com/optima-llm/optima/stages/prune"
)

// BenchmarkResumeVerify measures resumable (Prepare's checks) on a work
// directory of SmolLM2-135M's sizes, a run stopped before its last block:
// 29 done block files of its pruned linears (14.2 MB each, float32) and the
// two shards of prune's default calibration (128 windows of 2048 tokens,
// hidden 576: 302 MB each) entering block 29, 1.01 GB in all, with and without the checksums in the done
// markers (the header checks alone). Files are written by prune's own
// writers; the page cache holds them, so the figure is hashing and copying,
// not the disk. Metrics: MB/s verified, and sum/header, the time with
// checksums over the time without.
//
//	nice go test ./pipeline/ -run XXX -bench ResumeVerify -benchtime 3x
func BenchmarkResumeVerify(b *testing.B) {
	fam, err := model.New(&model.Config{
		Architecture: "LlamaForCausalLM", ModelType: "llama",
		HiddenSize: 576, IntermediateSize: 1536, NumHiddenLayers: 30,
		NumAttentionHeads: 9, NumKeyValueHeads: 3, HeadDim: 64, VocabSize: 49152,
		MaxPositionEmbeddings: 8192, RMSNormEps: 1e-5, RopeTheta: 1e5, HiddenAct: "silu",
	})
	if err != nil {
		b.Fatal(err)
	}
	const nseq, seqlen, shards = 128, 2048, 2
	hidden := fam.Config().HiddenSize
	cfg := &prune.Config{}
	work := prune.Work{Dir: b.TempDir()}
	var bytes int64
	var dones []prune.BlockDone
	for blk := range fam.NumBlocks() {
		var ts []*model.Tensor
		for _, l := range fam.Linears(blk) {
			t := &model.Tensor{Name: l.Weight(), Shape: []int{l.Out, l.In}, Data: make([]float32, l.Out*l.In)}
			for i := range t.Data {
				t.Data[i] = float32(i%997) * 1e-3
			}
			ts = append(ts, t)
			if blk < fam.NumBlocks()-1 {
				bytes += int64(4 * len(t.Data)) // the last block is not reused
			}
		}
		d := prune.BlockDone{Block: blk, Weights: work.BlockPath(blk)}
		if d.WeightsSHA256, err = prune.WriteTensorsSum(d.Weights, ts); err != nil {
			b.Fatal(err)
		}
		dones = append(dones, d)
	}
	x := make([]float32, nseq/shards*seqlen*hidden)
	for i := range x {
		x[i] = float32(i%1009) * 1e-3
	}
	last := &dones[len(dones)-2] // a run stopped before the last block
	for i := range shards {
		ref := prune.ShardRef{Block: last.Block + 1, Index: i, Path: work.HiddenPath(last.Block+1, i), NSeq: nseq / shards, SeqLen: seqlen, Hidden: hidden}
		if ref.SHA256, err = prune.WriteHiddenSum(ref.Path, x, ref.NSeq, seqlen, hidden); err != nil {
			b.Fatal(err)
		}
		last.Next = append(last.Next, ref)
		bytes += int64(4 * len(x))
	}
	dones = dones[:len(dones)-1]
	mark := func(sums bool) {
		for _, d := range dones {
			if !sums {
				d.WeightsSHA256 = ""
				d.Next = append([]prune.ShardRef(nil), d.Next...)
				for i := range d.Next {
					d.Next[i].SHA256 = ""
				}
			}
			if err := work.MarkDone(d); err != nil {
				b.Fatal(err)
			}
		}
	}
	log := slog.New(slog.DiscardHandler)
	var ns [2]float64
	for i, sums := range []bool{false, true} {
		name := map[bool]string{false: "header", true: "sum"}[sums]
		b.Run(name, func(b *testing.B) {
			mark(sums)
			b.SetBytes(bytes)
			for b.Loop() {
				got, err := resumable(context.Background(), work, fam, cfg, true, log)
				if err != nil || len(got) != len(dones) {
					b.Fatalf("resumable = %d blocks, %v; want %d", len(got), err, len(dones))
				}
			}
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if sums && ns[0] > 0 {
				b.ReportMetric(ns[1]/ns[0], "sum/header")
			}
		})
	}
}
