package eval

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/optima-llm/optima/internal/testenv"

	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
)

// openSmolLM2 loads every tensor of the GGUF named by OPTIMA_SMOLLM2_GGUF
// (skipping when unset).
func openSmolLM2(tb testing.TB) (*gguf.Model, model.Family, model.Weights) {
	tb.Helper()
	path := testenv.SmolLM2(tb)
	src, err := gguf.OpenModel(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	fam, err := model.New(src.Config())
	if err != nil {
		tb.Fatal(err)
	}
	w := model.Weights{}
	for _, n := range src.Names() {
		if w[n], err = src.Load(n); err != nil {
			tb.Fatal(err)
		}
	}
	return src, fam, w
}

// BenchmarkSmolLM2Forward scores one 2048-token window of SmolLM2-135M
// (embedding, 30 blocks, LM head over 2047 rows, float64 log-softmax) with
// all weights in memory. Sample (2-core Xeon shared with other builds, load
// average ~9, so a lower bound): 30.3 s/op, 67.6 tokens/s.
//
//	OPTIMA_SMOLLM2_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf go test -run XXX -bench SmolLM2 -benchtime 1x ./stages/eval
func BenchmarkSmolLM2Forward(b *testing.B) {
	_, fam, w := openSmolLM2(b)
	const seqlen = 2048
	ids := make([]int32, seqlen)
	for i := range ids {
		ids[i] = int32((i*7919 + 13) % fam.Config().VocabSize)
	}
	be := cpu.New(0)
	for b.Loop() {
		if _, err := Perplexity(context.Background(), be, fam, WeightsLoader(w), ids, seqlen, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seqlen*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// TestSmolLM2WikiText2 scores the first OPTIMA_PPL_WINDOWS (default 1)
// windows of WikiText-2 at seqlen 2048 and compares them with the
// transformers reference in testdata/smollm2_wikitext2_dense.json (written
// by tools/oracle/smollm2_reference.py) when that file exists: the token
// stream must hash the same and each window loss agree to 1e-4 relative.
//
// Measured here: with the reference's own row rule (lines without "\n") the
// stream is the reference's (304,734 tokens, same sha256) and windows 0 and
// 1 score 2.6965525 and 3.1446889 against 2.6965524 and 3.1446892. With
// WikiText2Text's Hugging Face rows (lines keep "\n", blank lines are "")
// the stream has 304,986 tokens and this test reports the difference until
// the reference is regenerated with those rows.
func TestSmolLM2WikiText2(t *testing.T) {
	src, fam, w := openSmolLM2(t)
	text, err := WikiText2Text(testenv.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ids := Tokenize(tok, text)
	h := sha256.New()
	for _, id := range ids {
		binary.Write(h, binary.LittleEndian, id)
	}
	sum := fmt.Sprintf("%x", h.Sum(nil))
	t.Logf("stream: %d tokens, sha256 %s, add_bos %v", len(ids), sum, tok.AddBOS())
	nwin := 2
	if s := os.Getenv("OPTIMA_PPL_WINDOWS"); s != "" {
		if nwin, err = strconv.Atoi(s); err != nil {
			t.Fatalf("OPTIMA_PPL_WINDOWS: %v", err)
		}
	}
	start := time.Now()
	res, err := Perplexity(context.Background(), cpu.New(0), fam, WeightsLoader(w), ids, 2048, nwin, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d windows: ppl %.4f, window losses %v (%.1fs)", res.Windows, res.Perplexity, res.WindowNLL, time.Since(start).Seconds())
	b, err := os.ReadFile("testdata/smollm2_wikitext2_dense.json")
	if err != nil {
		t.Skipf("no reference: %v", err)
	}
	var ref struct {
		Tokens     int       `json:"tokens_in_stream"`
		SHA        string    `json:"stream_ids_sha256"`
		WindowLoss []float64 `json:"window_loss"`
		Perplexity float64   `json:"perplexity"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if ref.Tokens != len(ids) || ref.SHA != sum {
		t.Fatalf("token stream differs from the reference: %d tokens sha256 %s, reference %d tokens sha256 %s", len(ids), sum, ref.Tokens, ref.SHA)
	}
	if len(res.WindowNLL) > len(ref.WindowLoss) {
		t.Fatalf("scored %d windows, the reference has %d", len(res.WindowNLL), len(ref.WindowLoss))
	}
	var refSum float64
	for i, l := range res.WindowNLL {
		refSum += ref.WindowLoss[i]
		if relDiff(l, ref.WindowLoss[i]) > 1e-4 {
			t.Errorf("window %d: loss %.6f, reference %.6f", i, l, ref.WindowLoss[i])
		}
	}
	// The check: perplexity within 0.1% of transformers' on the same
	// windows (all 148 with OPTIMA_PPL_WINDOWS=148; the reference's full
	// perplexity is ref.Perplexity).
	refPPL := math.Exp(refSum / float64(len(res.WindowNLL)))
	if relDiff(res.Perplexity, refPPL) > 1e-3 {
		t.Errorf("perplexity %.6f over %d windows, transformers %.6f", res.Perplexity, res.Windows, refPPL)
	}
	if res.Windows == len(ref.WindowLoss) && relDiff(res.Perplexity, ref.Perplexity) > 1e-3 {
		t.Errorf("full perplexity %.6f, transformers %.6f", res.Perplexity, ref.Perplexity)
	}
}
