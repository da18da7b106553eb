package runners_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/solve"
)

// jobServerPortEnv makes this test binary serve as a Beam job server
// (Prism's, in-process) on the given port instead of running tests: the
// stand-in for a Flink job server that tests can start and kill as a
// separate process.
const jobServerPortEnv = "OPTIMA_TEST_PRISM_JOB_SERVER_PORT"

func TestMain(m *testing.M) {
	if port := os.Getenv(jobServerPortEnv); port != "" {
		var p int
		fmt.Sscan(port, &p)
		if _, err := prism.CreateJobServer(context.Background(), prism.Options{Port: p}); err != nil {
			fmt.Fprintln(os.Stderr, "job server:", err)
			os.Exit(2)
		}
		fmt.Println("job server listening on port", p)
		// Exit with the test that started this server, even if it crashes.
		parent := os.Getppid()
		for os.Getppid() == parent {
			time.Sleep(time.Second)
		}
		os.Exit(0)
	}
	ptest.Main(m)
}

// fixture writes a tiny random Llama model of the given depth and a
// calibration corpus under dir.
func fixture(t *testing.T, dir string, layers int) (modelDir, corpus string) {
	t.Helper()
	modelDir = filepath.Join(dir, "tiny")
	o := tinymodel.Default()
	o.Layers = layers
	if _, _, err := tinymodel.Write(modelDir, o); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their can has more")
	r := rand.New(rand.NewPCG(3, 4))
	var sb strings.Builder
	for range 40 {
		var doc []string
		for range 30 + r.IntN(60) {
			doc = append(doc, words[r.IntN(len(words))])
		}
		b, _ := json.Marshal(map[string]string{"text": strings.Join(doc, " ")})
		sb.Write(b)
		sb.WriteByte('\n')
	}
	corpus = filepath.Join(dir, "calib.jsonl")
	if err := os.WriteFile(corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return modelDir, corpus
}

// config is the pruning run the tests compare across runners: Wanda 50% with
// the exact OPTIMA re-fit, two sample shards, two threads.
func config(modelDir, corpus, out, workRoot string) pipeline.Config {
	c := pipeline.Config{Out: out, WorkRoot: workRoot, Threads: 2}
	c.Model, c.Calib = modelDir, corpus
	c.Method, c.Sparsity, c.Update = "wanda", 0.5, prune.UpdateOptima
	c.NSamples, c.SeqLen, c.Seed, c.Shards = 6, 24, 7, 2
	c.Solve = solve.DefaultOptions()
	return c
}

// prune plans and runs cfg on rc, returning the plan (whose Done tells
// whether it resumed) and the runner's error.
func prunePipeline(t *testing.T, cfg pipeline.Config, rc runners.Config) (*pipeline.Plan, error) {
	t.Helper()
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	pipeline.Build(s, &cfg, plan)
	_, err = runners.Execute(context.Background(), rc, p)
	return plan, err
}

func weights(t *testing.T, dir string) model.Weights {
	t.Helper()
	src, err := loader.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := model.Weights{}
	for _, n := range src.Names() {
		tt, err := src.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		w[n] = tt
	}
	return w
}

// compare returns the largest |a−b| / max|a| over the tensors and whether
// every float is bit-identical; it fails on differing names or sizes.
func compare(t *testing.T, a, b model.Weights) (rel float64, identical bool) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d tensors", len(a), len(b))
	}
	identical = true
	for n, ta := range a {
		tb, ok := b[n]
		if !ok || len(ta.Data) != len(tb.Data) {
			t.Fatalf("tensor %s differs in presence or size", n)
		}
		scale, diff := 0.0, 0.0
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				identical = false
			}
			scale = math.Max(scale, math.Abs(float64(ta.Data[i])))
			diff = math.Max(diff, math.Abs(float64(ta.Data[i])-float64(tb.Data[i])))
		}
		if scale > 0 {
			rel = math.Max(rel, diff/scale)
		}
	}
	return rel, identical
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// localReference prunes cfg with the local runner into out.
func localReference(t *testing.T, cfg pipeline.Config, out string) model.Weights {
	t.Helper()
	cfg.Out, cfg.WorkRoot = out, ""
	if _, err := prunePipeline(t, cfg, runners.Config{}); err != nil {
		t.Fatalf("local runner: %v", err)
	}
	return weights(t, out)
}

// sameAsLocal checks that the weights are bit-identical to the local
// runner's. They must be: every DoFn computes the same values from the same
// inputs with a fixed thread count, and with two sample shards the Hessian
// combine adds exactly two float64 partials to a zero accumulator, which is
// exact and commutative whatever order a runner merges them in. (With more
// shards the merge order could change float64 rounding; the bound would
// then be 1e-6 relative.)
func sameAsLocal(t *testing.T, runner string, want, got model.Weights) {
	t.Helper()
	rel, identical := compare(t, want, got)
	t.Logf("%s vs local runner: max relative difference %.3g, bit-identical %v", runner, rel, identical)
	if !identical {
		t.Errorf("%s: pruned weights differ from the local runner's (max relative %.3g); want bit-identical", runner, rel)
	}
}

// TestGCSPathsEqualLocal reads the model and calibration data from a GCS
// emulator, keeps the work directory there and writes the pruned model to
// gs://; the result equals a local-path run bit for bit.
func TestGCSPathsEqualLocal(t *testing.T) {
	startGCS(t, "optima")
	dir := t.TempDir()
	modelDir, corpus := fixture(t, dir, 2)
	ctx := context.Background()
	ents, _ := os.ReadDir(modelDir)
	for _, e := range ents {
		if err := fileio.CopyFile(ctx, filepath.Join(modelDir, e.Name()), "gs://optima/models/tiny/"+e.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fileio.CopyFile(ctx, corpus, "gs://optima/data/calib.jsonl"); err != nil {
		t.Fatal(err)
	}
	cfg := config(modelDir, corpus, "", "")
	want := localReference(t, cfg, filepath.Join(dir, "local-out"))

	gcfg := config("gs://optima/models/tiny", "gs://optima/data/calib.jsonl", "gs://optima/out/pruned", "gs://optima/work")
	plan, err := prunePipeline(t, gcfg, runners.Config{})
	if err != nil {
		t.Fatalf("gs:// run: %v", err)
	}
	if !strings.HasPrefix(plan.Work.Dir, "gs://optima/work/") {
		t.Errorf("work directory %s is not under the gs:// work root", plan.Work.Dir)
	}
	if ok, _ := fileio.Exists(ctx, plan.Work.DonePath(1)); !ok {
		t.Errorf("no done marker for block 1 in %s", plan.Work.Dir)
	}
	got := weights(t, "gs://optima/out/pruned")
	sameAsLocal(t, "gs:// paths", want, got)
	for _, f := range []string{"report.json", "tokenizer.json", "model.safetensors"} {
		if ok, err := fileio.Exists(ctx, "gs://optima/out/pruned/"+f); err != nil || !ok {
			t.Errorf("gs://optima/out/pruned/%s missing (%v)", f, err)
		}
	}
}
