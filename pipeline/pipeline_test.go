package pipeline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/google/go-cmp/cmp"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
	"github.com/optima-llm/optima/internal/tinymodel"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/calib"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
)

func TestMain(m *testing.M) { ptest.Main(m) }

// fixture writes a tiny random Llama model and a calibration corpus.
func fixture(t *testing.T) (modelDir, corpus string) {
	t.Helper()
	dir := t.TempDir()
	modelDir = filepath.Join(dir, "tiny")
	o := tinymodel.Default()
	o.Layers = 3
	if _, _, err := tinymodel.Write(modelDir, o); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their can has more")
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for d := 0; d < 40; d++ {
		var doc strings.Builder
		for w := 0; w < 30+r.IntN(60); w++ {
			if w > 0 {
				doc.WriteByte(' ')
			}
			doc.WriteString(words[r.IntN(len(words))])
		}
		b, _ := json.Marshal(map[string]string{"text": doc.String()})
		sb.Write(b)
		sb.WriteByte('\n')
	}
	corpus = filepath.Join(dir, "calib.jsonl")
	if err := os.WriteFile(corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return modelDir, corpus
}

func baseConfig(modelDir, corpus, out string) pipeline.Config {
	c := pipeline.Config{Out: out}
	c.Model, c.Calib = modelDir, corpus
	c.Method, c.Sparsity, c.Update = "wanda", 0.5, prune.UpdateOptima
	c.NSamples, c.SeqLen, c.Seed, c.Shards = 6, 24, 7, 2
	c.Solve = solve.DefaultOptions()
	c.Threads = 2
	return c
}

// runPipeline prunes with the Beam pipeline on the local runner.
func runPipeline(t *testing.T, cfg pipeline.Config) {
	t.Helper()
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	pipeline.Build(s, &cfg, plan)
	if _, err := runners.Run(context.Background(), runners.Local, p); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
}

// runSequential prunes the same configuration with prune.RunSequential.
func runSequential(t *testing.T, cfg pipeline.Config) {
	t.Helper()
	src, err := loader.Open(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fam, err := model.New(src.Config())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := calib.ReadJSONL(cfg.Calib)
	if err != nil {
		t.Fatal(err)
	}
	wins, err := calib.Windows(docs, tok, cfg.NSamples, cfg.SeqLen, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	work, err := prune.NewWork(t.TempDir(), &cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := prune.RunSequential(cpu.New(2), &cfg.Config, src, fam, work, calib.Shard(wins, cfg.Shards), cfg.Out, nil); err != nil {
		t.Fatal(err)
	}
	// Its done markers record each block file's SHA-256, and one for each
	// shard (the shards themselves are gone by now).
	for b := range fam.NumBlocks() {
		var d prune.BlockDone
		raw, err := os.ReadFile(work.DonePath(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if got := fileSHA256(t, work.BlockPath(b)); d.WeightsSHA256 != got {
			t.Errorf("sequential block %d: weights_sha256 %q, the file's SHA-256 is %s", b, d.WeightsSHA256, got)
		}
		for _, s := range d.Next {
			if len(s.SHA256) != 64 {
				t.Errorf("sequential block %d: shard %d has sha256 %q", b, s.Index, s.SHA256)
			}
		}
	}
}

// weights loads every tensor of a written model directory.
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

// maxRelDiff is max |a−b| / max |a| over all tensors; it fails on differing
// names, shapes or zero patterns.
func maxRelDiff(t *testing.T, a, b model.Weights) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d tensors", len(a), len(b))
	}
	worst := 0.0
	for n, ta := range a {
		tb, ok := b[n]
		if !ok || len(ta.Data) != len(tb.Data) {
			t.Fatalf("tensor %s differs in presence or size", n)
		}
		scale, diff := 0.0, 0.0
		for i := range ta.Data {
			if (ta.Data[i] == 0) != (tb.Data[i] == 0) {
				t.Fatalf("%s[%d]: zero pattern differs (%g vs %g)", n, i, ta.Data[i], tb.Data[i])
			}
			scale = math.Max(scale, math.Abs(float64(ta.Data[i])))
			diff = math.Max(diff, math.Abs(float64(ta.Data[i]-tb.Data[i])))
		}
		if scale > 0 {
			worst = math.Max(worst, diff/scale)
		}
	}
	return worst
}

func readReport(t *testing.T, dir string) report.Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, prune.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPipelineEqualsSequential: the Beam pipeline's output equals a plain
// sequential run of the same stages. With two sample shards the Hessian
// partials are added in an order Beam chooses; two float64 addends commute
// exactly, so the weights are bit-identical.
func TestPipelineEqualsSequential(t *testing.T) {
	modelDir, corpus := fixture(t)
	for _, tc := range []struct {
		name    string
		pattern string
		update  string
	}{
		{"wanda50-optima", "", prune.UpdateOptima},
		{"wanda2:4-optima", "2:4", prune.UpdateOptima},
		{"wanda50-none", "", prune.UpdateNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(modelDir, corpus, filepath.Join(dir, "beam"))
			cfg.Pattern, cfg.Update = tc.pattern, tc.update
			if tc.pattern != "" {
				cfg.Sparsity = 0
			}
			runPipeline(t, cfg)
			seq := cfg
			seq.Out = filepath.Join(dir, "seq")
			runSequential(t, seq)
			if d := maxRelDiff(t, weights(t, cfg.Out), weights(t, seq.Out)); d != 0 {
				t.Errorf("pipeline and sequential weights differ: max relative %g", d)
			}
			checkReport(t, cfg)
		})
	}
}

// checkReport checks the report of a run: every linear has exactly the
// requested sparsity, and the update never increased a layer's error.
func checkReport(t *testing.T, cfg pipeline.Config) {
	t.Helper()
	r := readReport(t, cfg.Out)
	if len(r.Linears) != 3*7 {
		t.Fatalf("report has %d linears, want 21", len(r.Linears))
	}
	w := weights(t, cfg.Out)
	for _, l := range r.Linears {
		if l.ErrAfter > l.ErrBefore*(1+1e-12) {
			t.Errorf("%s: error after update %g > before %g", l.Name, l.ErrAfter, l.ErrBefore)
		}
		if cfg.Update == prune.UpdateOptima && !(l.ErrAfter < l.ErrBefore) {
			t.Errorf("%s: OPTIMA did not lower the error (%g vs %g)", l.Name, l.ErrAfter, l.ErrBefore)
		}
		tw := w[l.Name+".weight"]
		for row := 0; row < l.Out; row++ {
			zeros := 0
			for j := 0; j < l.In; j++ {
				if tw.Data[row*l.In+j] == 0 {
					zeros++
				}
			}
			want := int(float64(l.In) * cfg.Sparsity)
			if cfg.Pattern == "2:4" {
				want = l.In / 2
			}
			if zeros != want {
				t.Fatalf("%s row %d: %d zeros, want %d", l.Name, row, zeros, want)
			}
		}
	}
}

// TestShardAndRowBatchInvariance: the result does not depend on the number
// of row batches (bit for bit) nor on the number of sample shards (up to
// the float64 rounding of summing the Hessian in another grouping).
func TestShardAndRowBatchInvariance(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	ref := baseConfig(modelDir, corpus, filepath.Join(dir, "ref"))
	ref.Shards, ref.RowBatch = 1, 0
	runPipeline(t, ref)
	batched := ref
	batched.Out, batched.RowBatch = filepath.Join(dir, "batched"), 5
	runPipeline(t, batched)
	if d := maxRelDiff(t, weights(t, ref.Out), weights(t, batched.Out)); d != 0 {
		t.Errorf("row batches of 5 changed the weights: max relative %g", d)
	}
	sharded := ref
	sharded.Out, sharded.Shards = filepath.Join(dir, "sharded"), 3
	runPipeline(t, sharded)
	if d := maxRelDiff(t, weights(t, ref.Out), weights(t, sharded.Out)); d > 1e-5 {
		t.Errorf("3 sample shards changed the weights: max relative %g", d)
	}
}

// TestResume: a run stopped after block 1 (as an interrupted one would be)
// resumes from block 2 with the same result; another configuration never
// reuses the work.
func TestResume(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	full := baseConfig(modelDir, corpus, filepath.Join(dir, "full"))
	runPipeline(t, full)

	cfg := full
	cfg.Out, cfg.WorkRoot = filepath.Join(dir, "resumed"), filepath.Join(dir, "work")
	cfg.StopAfter = 2
	runPipeline(t, cfg)
	if _, err := os.Stat(cfg.Out); err == nil {
		t.Fatalf("a stopped run wrote the model")
	}
	cfg.StopAfter = 0
	plan, err := pipeline.Prepare(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Done) != 2 {
		t.Fatalf("resume found %d finished blocks, want 2", len(plan.Done))
	}
	if len(plan.Windows) != 0 {
		t.Errorf("a resume past block 0 drew calibration windows again")
	}
	runPipeline(t, cfg)
	if d := maxRelDiff(t, weights(t, full.Out), weights(t, cfg.Out)); d != 0 {
		t.Errorf("resumed run differs from the uninterrupted one: max relative %g", d)
	}

	other := cfg
	other.Seed++
	op, err := pipeline.Prepare(&other)
	if err != nil {
		t.Fatal(err)
	}
	if op.Work.Dir == plan.Work.Dir || len(op.Done) != 0 {
		t.Errorf("a different seed reused work dir %s (%d blocks done)", op.Work.Dir, len(op.Done))
	}
}

func TestValidateErrors(t *testing.T) {
	// A gs:// path that slips through meets a closed port, not the network.
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(*pipeline.Config)
		want string
	}{
		{"sparsity", func(c *pipeline.Config) { c.Sparsity = 1 }, "sparsity"},
		{"pattern", func(c *pipeline.Config) { c.Pattern = "4:4" }, "pattern"},
		{"width", func(c *pipeline.Config) { c.Pattern = "2:7" }, "2:7"},
		{"nsamples", func(c *pipeline.Config) { c.NSamples = 0 }, "--nsamples"},
		{"corpus", func(c *pipeline.Config) { c.NSamples, c.SeqLen = 1000, 512 }, "--nsamples"},
		{"out", func(c *pipeline.Config) { c.Out = "/proc/forbidden/x" }, "--out"},
		{"method", func(c *pipeline.Config) { c.Method = "random" }, "--method"},
		{"update", func(c *pipeline.Config) { c.Update = "own" }, "--update"},
		{"threads", func(c *pipeline.Config) { c.Threads = -3 }, "--threads -3"},
		{"work-dir is a file", func(c *pipeline.Config) { c.WorkRoot = c.Calib }, "--work-dir " + corpus},
		{"work-dir without bucket", func(c *pipeline.Config) { c.WorkRoot = "gs://" }, "--work-dir gs://"},
		{"work-dir empty bucket", func(c *pipeline.Config) { c.WorkRoot = "gs:///work" }, "--work-dir gs:///work"},
		{"model empty bucket", func(c *pipeline.Config) { c.Model = "gs:///models/tiny" }, "--model gs:///models/tiny"},
		{"calib empty bucket", func(c *pipeline.Config) { c.Calib = "gs:///c4.jsonl" }, "--calib gs:///c4.jsonl"},
		{"calib bucket only", func(c *pipeline.Config) { c.Calib = "gs://bkt/" }, "--calib gs://bkt/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(modelDir, corpus, filepath.Join(dir, tc.name))
			tc.edit(&cfg)
			_, err := pipeline.Prepare(&cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare: %v, want an error mentioning %q", err, tc.want)
			}
			if _, serr := os.Stat(cfg.Out); serr == nil {
				t.Errorf("output %s exists after a rejected configuration", cfg.Out)
			}
		})
	}
}

// TestSkipAttention: with SkipAttention the attention projections are
// written unchanged and only the MLP linears are pruned and reported.
func TestSkipAttention(t *testing.T) {
	modelDir, corpus := fixture(t)
	cfg := baseConfig(modelDir, corpus, filepath.Join(t.TempDir(), "out"))
	cfg.SkipAttention = true
	runPipeline(t, cfg)
	dense, pruned := weights(t, modelDir), weights(t, cfg.Out)
	for name, tt := range pruned {
		attn := strings.Contains(name, "self_attn")
		same := cmp.Equal(tt.Data, dense[name].Data)
		switch {
		case attn && !same:
			t.Errorf("%s changed although attention is skipped", name)
		case !attn && strings.Contains(name, "mlp") && same:
			t.Errorf("%s was not pruned", name)
		}
	}
	r := readReport(t, cfg.Out)
	if len(r.Linears) != 3*3 {
		t.Errorf("report has %d linears, want the 9 MLP linears", len(r.Linears))
	}
	for _, l := range r.Linears {
		if strings.Contains(l.Name, "self_attn") {
			t.Errorf("report lists %s", l.Name)
		}
	}
}

// TestValidateOut: an --out that holds anything but a model optima wrote,
// that is a file, or that holds the run's own inputs is refused before any
// work, and what is there is left untouched (the model is written by
// replacing the whole directory).
func TestValidateOut(t *testing.T) {
	modelDir, corpus := fixture(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	foreign := filepath.Join(dir, "foreign")
	previous := filepath.Join(dir, "previous")
	empty := filepath.Join(dir, "empty")
	for p, content := range map[string]string{
		file:                                                      "not a directory",
		filepath.Join(foreign, "config.json"):                     "{}",
		filepath.Join(foreign, "notes.txt"):                       "precious",
		filepath.Join(previous, "config.json"):                    "{}",
		filepath.Join(previous, "model.safetensors"):              "x",
		filepath.Join(previous, "report.json"):                    "{}",
		filepath.Join(previous, "tokenizer.json"):                 "{}",
		filepath.Join(previous, "tokenizer_config.json"):          "{}",
		filepath.Join(previous, "adapter", "adapter_config.json"): "{}",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	// linked is another name for the model's parent directory.
	linked := filepath.Join(t.TempDir(), "linked")
	if err := os.Symlink(filepath.Dir(modelDir), linked); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*pipeline.Config)
		want []string // substrings of the error; none: valid
	}{
		{"absent", func(c *pipeline.Config) { c.Out = filepath.Join(dir, "new") }, nil},
		{"empty dir", func(c *pipeline.Config) { c.Out = empty }, nil},
		{"previous output", func(c *pipeline.Config) { c.Out = previous }, nil},
		{"file", func(c *pipeline.Config) { c.Out = file }, []string{"--out", file, "not a directory"}},
		{"foreign file", func(c *pipeline.Config) { c.Out = foreign }, []string{"--out", foreign, "notes.txt"}},
		{"model dir", func(c *pipeline.Config) { c.Out = modelDir }, []string{"--model", "--out"}},
		{"model dir through a link", func(c *pipeline.Config) { c.Out = filepath.Join(linked, filepath.Base(modelDir)) }, []string{"--model", "--out"}},
		{"parent of the model", func(c *pipeline.Config) { c.Out = filepath.Dir(modelDir) }, []string{"--model", "--out"}},
		{"parent of the corpus", func(c *pipeline.Config) {
			c.Model = filepath.Join(dir, "m")
			c.Out = filepath.Dir(corpus)
		}, []string{"--calib", "--out"}},
		{"work dir inside", func(c *pipeline.Config) {
			c.Out = filepath.Join(dir, "new")
			c.WorkRoot = filepath.Join(c.Out, "work")
		}, []string{"--work-dir", "--out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(modelDir, corpus, "")
			tc.edit(&cfg)
			before := listTree(t, dir)
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error for --out %s", cfg.Out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if d := cmp.Diff(before, listTree(t, dir)); d != "" {
				t.Errorf("a rejected --out changed the files (-before +after):\n%s", d)
			}
		})
	}
}

// listTree lists the paths under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestPrepareMissingTensors: a model whose config.json promises tensors
// its files do not hold (more layers than stored, a dropped tensor) is
// refused by Prepare, naming the model and the tensor, before any block
// runs and before the work directory exists.
func TestPrepareMissingTensors(t *testing.T) {
	modelDir, corpus := fixture(t)
	for _, tc := range []struct {
		name string
		edit func(cfg map[string]any)
		want []string
	}{
		{"more layers", func(c map[string]any) { c["num_hidden_layers"] = 4 }, []string{"model.layers.3.", "config.json"}},
		{"unchanged", func(map[string]any) {}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "model")
			if err := os.CopyFS(dir, os.DirFS(modelDir)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "config.json")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			tc.edit(c)
			if raw, err = json.Marshal(c); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(dir, corpus, filepath.Join(t.TempDir(), "out"))
			_, err = pipeline.Prepare(&cfg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Prepare: no error")
			}
			for _, w := range append([]string{"--model", dir}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(cfg.Out + ".work"); serr == nil {
				t.Errorf("work directory %s.work exists after a rejected model", cfg.Out)
			}
		})
	}
}

// TestPrepareWrongShapes: a model whose linear weights do not have the
// shape its configuration gives (GGUF metadata, or a config.json of a
// family whose shapes the HF reader does not check) is refused by Prepare,
// naming the tensor, before any block runs.
func TestPrepareWrongShapes(t *testing.T) {
	_, corpus := fixture(t)
	dir := t.TempDir()
	o := tinymodel.Default()
	o.Layers = 2
	// A GGUF whose llama.feed_forward_length says 256 for 128-wide MLPs.
	gguf := filepath.Join(dir, "ffn.gguf")
	if _, _, err := tinymodel.WriteGGUF(gguf, o); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(gguf)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("llama.feed_forward_length")
	i := bytes.Index(raw, key) + len(key)
	if i < len(key) || binary.LittleEndian.Uint32(raw[i:]) != 4 || binary.LittleEndian.Uint32(raw[i+4:]) != 128 {
		t.Fatalf("%s: no uint32 llama.feed_forward_length 128", gguf)
	}
	binary.LittleEndian.PutUint32(raw[i+4:], 256)
	if err := os.WriteFile(gguf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// An OPT directory whose config.json says ffn_dim 256.
	opt := filepath.Join(dir, "opt")
	oo := o
	oo.Arch = "OPTForCausalLM"
	if _, _, err := tinymodel.Write(opt, oo); err != nil {
		t.Fatal(err)
	}
	cj := filepath.Join(opt, "config.json")
	if raw, err = os.ReadFile(cj); err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["ffn_dim"] = 256
	if raw, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cj, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, model, want string }{
		{"gguf", gguf, "model.layers.0.mlp.gate_proj.weight"},
		{"opt", opt, "model.decoder.layers.0.fc1.weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(tc.model, corpus, filepath.Join(t.TempDir(), "out"))
			_, err := pipeline.Prepare(&cfg)
			if err == nil {
				t.Fatal("Prepare: no error")
			}
			for _, w := range []string{"--model", tc.model, tc.want, "[128 64]", "[256 64]"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(cfg.Out + ".work"); serr == nil {
				t.Errorf("work directory %s.work exists after a rejected model", cfg.Out)
			}
		})
	}
}

// TestValidateRemoteOut: a gs:// --out is replaced whole (every object
// under it is removed before the upload), so as for a local one, Validate
// refuses a prefix holding other objects or the run's own inputs and
// leaves the objects alone; a previous model is replaced.
func TestValidateRemoteOut(t *testing.T) {
	modelDir, corpus := fixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	for _, p := range []string{"gs://bkt/data/notes.txt", "gs://bkt/data/config.json",
		"gs://bkt/prev/config.json", "gs://bkt/prev/model.safetensors", "gs://bkt/prev/report.json",
		"gs://bkt/prev/adapter/adapter_config.json", "gs://bkt/in/calib.jsonl", "gs://bkt/in/model/config.json"} {
		if err := fileio.WriteFile(ctx, p, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*pipeline.Config)
		want []string // substrings of the error; none: valid
	}{
		{"absent", func(c *pipeline.Config) { c.Out = "gs://bkt/new" }, nil},
		{"previous output", func(c *pipeline.Config) { c.Out = "gs://bkt/prev" }, nil},
		{"sibling prefix", func(c *pipeline.Config) { c.Out = "gs://bkt/da" }, nil},
		{"foreign object", func(c *pipeline.Config) { c.Out = "gs://bkt/data" }, []string{"--out gs://bkt/data", "notes.txt"}},
		{"holds the corpus", func(c *pipeline.Config) { c.Out, c.Calib = "gs://bkt/in", "gs://bkt/in/calib.jsonl" }, []string{"--calib", "--out"}},
		{"holds the model", func(c *pipeline.Config) { c.Out, c.Model = "gs://bkt/in/model", "gs://bkt/in/model" }, []string{"--model", "--out"}},
		{"holds the work dir", func(c *pipeline.Config) { c.Out, c.WorkRoot = "gs://bkt/new", "gs://bkt/new/work" }, []string{"--work-dir", "--out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(modelDir, corpus, "")
			tc.edit(&cfg)
			before, err := fileio.Glob(ctx, "gs://bkt/**")
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error for --out %s", cfg.Out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			after, err := fileio.Glob(ctx, "gs://bkt/**")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(before, after); d != "" {
				t.Errorf("a rejected --out changed the objects (-before +after):\n%s", d)
			}
		})
	}
}
