package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	_ "github.com/optima-llm/optima/model/llama"
)

// pplGolden is the "ppl" part of model/llama/testdata/<variant>/golden.json,
// written by tools/oracle/llama_golden.py with Wanda's eval_ppl_wikitext loop.
type pplGolden struct {
	Stream     []int32   `json:"stream"`
	Seqlen     int       `json:"seqlen"`
	WindowLoss []float64 `json:"window_loss"`
	Perplexity float64   `json:"perplexity"`
}

func loadGolden(t testing.TB, variant string) (model.Family, model.Weights, pplGolden) {
	t.Helper()
	dir := filepath.Join("..", "..", "model", "llama", "testdata", variant)
	cfg, w, err := tinymodel.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	fam, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ PPL pplGolden }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return fam, w, g.PPL
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Abs(b) }

func TestPerplexityGolden(t *testing.T) {
	be := cpu.New(0)
	for _, variant := range []string{"gqa_untied", "gqa_tied_bias"} {
		fam, w, g := loadGolden(t, variant)
		for _, pl := range []plan{
			{hiddenBudget, callTokens, logitRows},
			// Several passes, one window per ForwardBlock call, 5 logit rows at a time.
			{hiddenBytes: 2 * g.Seqlen * fam.Config().HiddenSize * 4, callTokens: 1, logitRows: 5},
		} {
			t.Run(fmt.Sprintf("%s/%+v", variant, pl), func(t *testing.T) {
				res, err := perplexity(context.Background(), be, fam, WeightsLoader(w), g.Stream, g.Seqlen, 0, nil, pl)
				if err != nil {
					t.Fatal(err)
				}
				if res.Windows != len(g.WindowLoss) || res.Seqlen != g.Seqlen || res.Tokens != res.Windows*g.Seqlen {
					t.Fatalf("windows %d seqlen %d tokens %d, want %d windows of %d", res.Windows, res.Seqlen, res.Tokens, len(g.WindowLoss), g.Seqlen)
				}
				for i, l := range g.WindowLoss {
					if d := relDiff(res.WindowNLL[i], l); d > 1e-5 {
						t.Errorf("window %d: loss %.8g, want %.8g (rel %.2g)", i, res.WindowNLL[i], l, d)
					}
				}
				if d := relDiff(res.Perplexity, g.Perplexity); d > 1e-4 {
					t.Errorf("perplexity %.8g, want %.8g (rel %.2g)", res.Perplexity, g.Perplexity, d)
				}
				if d := relDiff(math.Exp(res.NLL), res.Perplexity); d > 1e-12 {
					t.Errorf("exp(NLL) %g != perplexity %g", math.Exp(res.NLL), res.Perplexity)
				}
			})
		}
	}
}

func TestPerplexityMaxWindowsProgressAndLoads(t *testing.T) {
	fam, w, g := loadGolden(t, "gqa_untied")
	loads := map[string]int{}
	load := func(names []string) (model.Weights, error) {
		loads[names[0]]++
		return WeightsLoader(w)(names)
	}
	var calls [][2]int
	res, err := Perplexity(context.Background(), cpu.New(1), fam, load, g.Stream, g.Seqlen, 3, func(done, total int) {
		calls = append(calls, [2]int{done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Windows != 3 {
		t.Fatalf("windows %d, want 3", res.Windows)
	}
	if diff := cmp.Diff(g.WindowLoss[:3], res.WindowNLL, cmp.Comparer(func(a, b float64) bool { return relDiff(a, b) < 1e-5 })); diff != "" {
		t.Errorf("window losses (-want +got):\n%s", diff)
	}
	total := 3 * (fam.NumBlocks() + 2)
	if len(calls) == 0 || calls[len(calls)-1] != [2]int{total, total} {
		t.Errorf("progress calls %v, want to end at %d/%d", calls, total, total)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] {
			t.Errorf("progress not increasing: %v", calls)
		}
	}
	// One pass: the embedding, each block and the head are loaded once.
	for name, n := range loads {
		if n != 1 {
			t.Errorf("%s group loaded %d times, want 1", name, n)
		}
	}
	if len(loads) != fam.NumBlocks()+2 {
		t.Errorf("%d load groups, want %d", len(loads), fam.NumBlocks()+2)
	}
}

func TestPerplexityErrors(t *testing.T) {
	fam, w, g := loadGolden(t, "gqa_untied")
	be := cpu.New(1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	boom := errors.New("boom")
	bad := append([]int32(nil), g.Stream[:16]...)
	bad[7] = int32(fam.Config().VocabSize)
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		load   Loader
		ids    []int32
		seqlen int
		want   string
	}{
		{"seqlen 1", context.Background(), WeightsLoader(w), g.Stream, 1, "seqlen"},
		{"short stream", context.Background(), WeightsLoader(w), g.Stream[:15], 16, "shorter than seqlen"},
		{"bad id", context.Background(), WeightsLoader(w), bad, 16, "token id"},
		{"cancelled", cancelled, WeightsLoader(w), g.Stream, 16, "context canceled"},
		{"load error", context.Background(), func([]string) (model.Weights, error) { return nil, boom }, g.Stream, 16, "boom"},
		{"missing tensor", context.Background(), WeightsLoader(model.Weights{}), g.Stream, 16, "missing tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Perplexity(tc.ctx, be, fam, tc.load, tc.ids, tc.seqlen, 0, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestNLLRows checks the float64 log-softmax against a direct formula on
// rows with large offsets (where a naive exp would overflow).
func TestNLLRows(t *testing.T) {
	logits := []float32{1000, 1001, 999, -5, 0, 5}
	got := make([]float64, 2)
	if err := nllRows(got, logits, 3, []int32{1, 0}, 2); err != nil {
		t.Fatal(err)
	}
	want := []float64{
		math.Log(math.Exp(-1) + 1 + math.Exp(-2)),   // logsumexp - 1001
		10 + math.Log(math.Exp(-10)+math.Exp(-5)+1), // logsumexp - (-5)
	}
	for i := range want {
		if relDiff(got[i], want[i]) > 1e-12 {
			t.Errorf("row %d: %v, want %v", i, got[i], want[i])
		}
	}
}
