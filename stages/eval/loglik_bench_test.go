//go:build unix

package eval

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
)

// BenchmarkLogLikelihoods scores 16 MMLU-like items (one context, " A"…" D")
// and 16 ARC-like items (one context, four multi-word answers) on a small
// random Llama (hidden 256, 2 layers), once batched in one LogLikelihoods
// call and once request by request (the baseline), and reports the speedup
// of the batched call in process CPU time. Sample (2 shared cores, load ~13;
// the MMLU-like items share one sequence per item, the ARC-like ones are
// batched but recompute their shared context; measured before
// LogLikelihoods reused contexts, see BenchmarkPrefixReuse):
//
//	BenchmarkLogLikelihoods-2  3  273.2 batched-cpu-ms  647.8 one-by-one-cpu-ms  2.371 speedup
//
//	go test -run XXX -bench LogLikelihoods -benchtime 3x ./stages/eval
func BenchmarkLogLikelihoods(b *testing.B) {
	o := tinymodel.Default()
	o.Hidden, o.Intermediate, o.Heads, o.KVHeads = 256, 512, 4, 2
	cfg := tinymodel.Config(o)
	w := tinymodel.Weights(o)
	fam, err := model.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tinymodel.Tokenizer(o.Vocab)
	if err != nil {
		b.Fatal(err)
	}
	words := strings.Fields(trainingWords)
	r := rand.New(rand.NewPCG(1, 1))
	sent := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = words[r.IntN(len(words))]
		}
		return strings.Join(s, " ")
	}
	var reqs []Request
	for range 16 {
		ctx := sent(60) + "\nA. " + sent(3) + "\nB. " + sent(3) + "\nC. " + sent(3) + "\nD. " + sent(3) + "\nAnswer:"
		for _, c := range []string{" A", " B", " C", " D"} {
			q, err := EncodePair(tok, ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, q)
		}
		ctx = "Question: " + sent(20) + "\nAnswer:"
		for range 4 {
			q, err := EncodePair(tok, ctx, " "+sent(4))
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, q)
		}
	}
	be := cpu.New(0)
	load := WeightsLoader(w)
	// CPU time (user+system of the process) rather than wall time: the
	// machine this runs on is shared, and wall time mostly measures the
	// neighbours.
	var batched, single time.Duration
	for b.Loop() {
		t0 := cpuTime(b)
		if _, err := LogLikelihoods(context.Background(), be, fam, load, reqs, 0, nil); err != nil {
			b.Fatal(err)
		}
		t1 := cpuTime(b)
		for _, q := range reqs {
			if _, err := LogLikelihoods(context.Background(), be, fam, load, []Request{q}, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
		batched += t1 - t0
		single += cpuTime(b) - t1
	}
	n := float64(b.N)
	b.ReportMetric(batched.Seconds()*1e3/n, "batched-cpu-ms")
	b.ReportMetric(single.Seconds()*1e3/n, "one-by-one-cpu-ms")
	b.ReportMetric(single.Seconds()/batched.Seconds(), "speedup")
}

// cpuTime is the process's user plus system time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const trainingWords = `the tiny model reads the text one token at a time and the tokenizer splits
the text into pieces then it merges the most frequent pairs of symbols into new tokens
in the beginning there were only bytes then there were the words a model that is pruned
keeps the weights that matter and drops the others`

// BenchmarkPrefixReuse scores 16 items on a small random Llama (hidden 256,
// 2 layers) through LogLikelihoods (each context runs once,
// model.PrefixForwarder) and through PlainLogLikelihoods (every choice runs
// context+answer), and reports both in process CPU time and the speedup of
// the prefix path. arc: a 40-word question with four 4-word answers, one
// context for the four. mmlu: a 60-word prompt (random words, so items
// share no beginning) with the one-token answers " A"…" D", which the plain
// path already runs as one sequence per item (a speedup of 1 means the span
// path costs nothing extra). Sample (2 shared cores, load ~3):
//
//	BenchmarkPrefixReuse/arc-2    5  414660223 ns/op  302.5 plain-cpu-ms  106.1 prefix-cpu-ms  2.850 speedup
//	BenchmarkPrefixReuse/mmlu-2   5  171098902 ns/op  86.28 plain-cpu-ms  82.41 prefix-cpu-ms  1.047 speedup
//
//	go test -run XXX -bench PrefixReuse -benchtime 5x ./stages/eval
func BenchmarkPrefixReuse(b *testing.B) {
	o := tinymodel.Default()
	o.Hidden, o.Intermediate, o.Heads, o.KVHeads = 256, 512, 4, 2
	fam, err := model.New(tinymodel.Config(o))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tinymodel.Tokenizer(o.Vocab)
	if err != nil {
		b.Fatal(err)
	}
	words := strings.Fields(trainingWords)
	r := rand.New(rand.NewPCG(2, 2))
	sent := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = words[r.IntN(len(words))]
		}
		return strings.Join(s, " ")
	}
	enc := func(ctx, cont string) Request {
		q, err := EncodePair(tok, ctx, cont)
		if err != nil {
			b.Fatal(err)
		}
		return q
	}
	var arc, mmlu []Request
	for range 16 {
		ctx := "Question: " + sent(40) + "\nAnswer:"
		for range 4 {
			arc = append(arc, enc(ctx, " "+sent(4)))
		}
		ctx = sent(60) + "\nAnswer:"
		for _, c := range []string{" A", " B", " C", " D"} {
			mmlu = append(mmlu, enc(ctx, c))
		}
	}
	be := cpu.New(0)
	load := WeightsLoader(tinymodel.Weights(o))
	for _, c := range []struct {
		name string
		reqs []Request
	}{{"arc", arc}, {"mmlu", mmlu}} {
		b.Run(c.name, func(b *testing.B) {
			var prefix, plain time.Duration
			for b.Loop() {
				t0 := cpuTime(b)
				if _, err := LogLikelihoods(context.Background(), be, fam, load, c.reqs, 0, nil); err != nil {
					b.Fatal(err)
				}
				t1 := cpuTime(b)
				if _, err := PlainLogLikelihoods(context.Background(), be, fam, load, c.reqs, 0, nil); err != nil {
					b.Fatal(err)
				}
				prefix += t1 - t0
				plain += cpuTime(b) - t1
			}
			n := float64(b.N)
			b.ReportMetric(prefix.Seconds()*1e3/n, "prefix-cpu-ms")
			b.ReportMetric(plain.Seconds()*1e3/n, "plain-cpu-ms")
			b.ReportMetric(plain.Seconds()/prefix.Seconds(), "speedup")
		})
	}
}
