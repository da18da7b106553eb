package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/stages/calib"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/transforms"
)

// Config is a pruning run: what decides the result (prune.Config) and where
// things go.
type Config struct {
	prune.Config
	// Out is the model directory to write (replaced atomically).
	Out string
	// WorkRoot holds work directories keyed by a digest of the
	// configuration and of the contents of the model and corpus files
	// (workKey); empty means Out + ".work". Model, Calib, Out and WorkRoot may be gs:// URLs
	// (internal/fileio); Flink and Dataflow workers need the work root on
	// storage they all reach.
	WorkRoot string
	// Threads bounds the compute goroutines per DoFn (0: GOMAXPROCS).
	Threads int
	// StopAfter ends the run once this many blocks are done in total (0:
	// all). The model is written only when every block is done; a later run
	// with the same configuration resumes where this one stopped. It does not
	// change the result, so it is not part of the configuration hash.
	StopAfter int
	// PlanOnly makes Prepare create nothing (no work directory): for a dry
	// run that only prints the job.
	PlanOnly bool
	// Log receives what Prepare and RemoveWork do to files the user did not
	// name (corrupt work files redone, stale temporary directories and work
	// directories removed); nil means silent.
	Log *slog.Logger `json:"-"`
}

// logger is c.Log, or a logger that discards everything.
func (c *Config) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Validate checks the configuration, naming the flag at fault.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.Out == "" {
		return errors.New("--out is required")
	}
	if c.StopAfter < 0 {
		return fmt.Errorf("--stop-after-blocks %d: must not be negative", c.StopAfter)
	}
	if c.Threads < 0 {
		return fmt.Errorf("--threads %d: must not be negative (0: all cores)", c.Threads)
	}
	// A remote work root is checked whatever --out is: "gs://" alone
	// would make the configuration hash the bucket name.
	if fileio.IsRemote(c.WorkRoot) {
		if _, _, err := fileio.ParseGCS(c.WorkRoot); err != nil {
			return fmt.Errorf("--work-dir %s: want gs://bucket[/path]: %w", c.WorkRoot, err)
		}
	}
	// fileio.Clean (used by the loader) reads "gs:///x" as the bucket "x":
	// an empty bucket must fail here, naming the flag.
	if fileio.IsRemote(c.Model) {
		if _, _, err := fileio.ParseGCS(c.Model); err != nil {
			return fmt.Errorf("--model %s: want gs://bucket[/path]: %w", c.Model, err)
		}
	}
	if fileio.IsRemote(c.Calib) {
		if _, obj, err := fileio.ParseGCS(c.Calib); err != nil || obj == "" || strings.HasSuffix(obj, "/") {
			return fmt.Errorf("--calib %s: want gs://bucket/object", c.Calib)
		}
	}
	if c.WorkRoot != "" && !fileio.IsRemote(c.WorkRoot) {
		if st, err := os.Stat(c.WorkRoot); err == nil && !st.IsDir() {
			return fmt.Errorf("--work-dir %s: exists and is not a directory", c.WorkRoot)
		}
	}
	if !fileio.IsRemote(c.Out) {
		if err := c.checkLocalOut(); err != nil {
			return err
		}
	}
	if fileio.IsRemote(c.Out) || fileio.IsRemote(c.Calib) {
		return c.validateRemote()
	}
	parent := filepath.Dir(filepath.Clean(c.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("--out %s: cannot create parent directory %s: %w", c.Out, parent, err)
	}
	probe, err := os.CreateTemp(parent, ".optima-write-probe-*")
	if err != nil {
		return fmt.Errorf("--out %s: directory %s is not writable: %w", c.Out, parent, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	if st, err := os.Stat(c.Calib); err != nil || st.IsDir() {
		return fmt.Errorf("--calib %s: not a readable file", c.Calib)
	}
	return nil
}

// checkLocalOut refuses a local Out that writing the model (which replaces
// the whole directory) would lose data in: a path that is not a directory,
// a directory holding anything but the files of a model optima writes
// (outputFile), or one that holds the run's own model, corpus or work
// directory.
func (c *Config) checkLocalOut() error {
	out, err := realPath(c.Out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", c.Out, err)
	}
	for _, in := range []struct{ flag, path string }{{"--model", c.Model}, {"--calib", c.Calib}, {"--work-dir", c.WorkRoot}} {
		if in.path == "" || fileio.IsRemote(in.path) {
			continue
		}
		p, err := realPath(in.path)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(out, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("%s %s is inside --out %s, which is replaced when the model is written: choose another --out", in.flag, in.path, c.Out)
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		// Absent, or a parent that is not a directory or not readable:
		// nothing to lose; Validate's parent checks report the others.
		return nil
	}
	if !st.IsDir() {
		return fmt.Errorf("--out %s: exists and is not a directory", c.Out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", c.Out, err)
	}
	for _, e := range entries {
		if !outputFile(e.Name(), e.IsDir()) {
			return fmt.Errorf("--out %s: holds %s, which is not part of a model optima writes; the directory is replaced when the model is written, so remove it or choose another --out", c.Out, e.Name())
		}
	}
	return nil
}

// realPath is p made absolute with the symbolic links of its longest
// existing prefix resolved, so that two names of one directory compare
// equal.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := abs; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if filepath.Dir(cur) == cur {
			return abs, nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// checkRemoteOut is checkLocalOut for a gs:// Out, whose every object
// writeRemoteModel removes before the upload: the run's inputs must not be
// under it, and the objects under it must be those of a model optima
// writes.
func (c *Config) checkRemoteOut(ctx context.Context) error {
	out := strings.TrimSuffix(c.Out, "/")
	for _, in := range []struct{ flag, path string }{{"--model", c.Model}, {"--calib", c.Calib}, {"--work-dir", c.WorkRoot}} {
		if p := strings.TrimSuffix(in.path, "/"); fileio.IsRemote(p) && (p == out || strings.HasPrefix(p, out+"/")) {
			return fmt.Errorf("%s %s is under --out %s, which is replaced when the model is written: choose another --out", in.flag, in.path, c.Out)
		}
	}
	objs, err := fileio.Glob(ctx, out+"/**")
	if err != nil {
		return fmt.Errorf("--out %s: %w", c.Out, err)
	}
	for _, o := range objs {
		rel := strings.TrimPrefix(o, out+"/")
		name, inAdapter := strings.CutPrefix(rel, prune.AdapterDir+"/")
		if inAdapter && (name == prune.AdapterConfigFile || name == prune.AdapterWeightsFile) || !inAdapter && outputFile(rel, false) {
			continue
		}
		return fmt.Errorf("--out %s: holds %s, which is not part of a model optima writes; every object under --out is removed when the model is written, so remove it or choose another --out", c.Out, rel)
	}
	return nil
}

// outputFile reports whether name (a directory when dir) is one of the
// entries of a model directory that prune.WriteModel writes, so that a
// rerun may replace it: config.json, model.safetensors or its shards and
// index, the tokenizer files, report.json and the adapter directory.
func outputFile(name string, dir bool) bool {
	if dir {
		return name == prune.AdapterDir
	}
	switch name {
	case "config.json", "tokenizer.json", "tokenizer_config.json", prune.ReportFile, safetensors.SingleName, safetensors.IndexName:
		return true
	}
	return strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors")
}

// validateRemote checks gs:// paths: a well-formed --out URL and a
// readable --calib object (or local file). Writability of a bucket is only
// known when the first object is written.
func (c *Config) validateRemote() error {
	ctx := context.Background()
	if fileio.IsRemote(c.Out) {
		if _, obj, err := fileio.ParseGCS(c.Out); err != nil || obj == "" {
			return fmt.Errorf("--out %s: want gs://bucket/path", c.Out)
		}
		if err := c.checkRemoteOut(ctx); err != nil {
			return err
		}
	} else if err := os.MkdirAll(filepath.Dir(filepath.Clean(c.Out)), 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", c.Out, err)
	}
	if ok, err := fileio.Exists(ctx, c.Calib); err != nil || !ok {
		return fmt.Errorf("--calib %s: not a readable file (%v)", c.Calib, err)
	}
	return nil
}

// readCorpus reads the calibration corpus at path, a local file or a gs://
// object (copied to a temporary file for calib.ReadJSONL).
func readCorpus(path string) ([]string, error) {
	if !fileio.IsRemote(path) {
		return calib.ReadJSONL(path)
	}
	raw, err := fileio.ReadFile(context.Background(), path)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "optima-calib-*.jsonl")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(raw)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	docs, err := calib.ReadJSONL(f.Name())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return docs, nil
}

// Plan is what Build needs beyond the configuration, computed once in the
// launching process: the model's family, the work directory, the finished
// blocks and the calibration windows.
type Plan struct {
	Family model.Family
	Work   prune.Work
	// Done are the leading finished blocks found in the work directory.
	Done []prune.BlockDone
	// Windows are the calibration windows, split into sample shards (empty
	// when resuming past block 0).
	Windows []transforms.WindowShard
}

// Prepare validates cfg, opens the model, finds or creates the work
// directory, and draws the calibration windows unless a resume makes them
// unnecessary.
func Prepare(cfg *Config) (*Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := loader.Open(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	defer src.Close()
	fam, err := model.New(src.Config())
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", cfg.Model, err)
	}
	if err := checkTensors(src, fam); err != nil {
		return nil, fmt.Errorf("--model %s: %w", cfg.Model, err)
	}
	if mp := src.Config().MaxPositionEmbeddings; mp > 0 && cfg.SeqLen > mp {
		return nil, fmt.Errorf("--seqlen %d: longer than the model's context of %d tokens", cfg.SeqLen, mp)
	}
	pat, err := cfg.MaskPattern()
	if err != nil {
		return nil, err
	}
	for b := 0; b < fam.NumBlocks(); b++ {
		for _, l := range fam.Linears(b) {
			if cfg.Prunable(l) {
				if err := pat.Check(l.In); err != nil {
					return nil, fmt.Errorf("--pattern: %s: %w", l.Name, err)
				}
			}
		}
	}
	if err := cfg.CheckCompressShapes(fam); err != nil {
		return nil, err
	}
	warnFewTokens(cfg, fam, cfg.logger())
	root := cfg.WorkRoot
	if root == "" {
		root = fileio.Clean(cfg.Out) + ".work"
	}
	// Look for finished blocks before creating anything, and draw the
	// windows (which may fail on a small corpus) before the work directory
	// exists, so that a rejected run leaves nothing behind.
	inputs, err := inputIDs(context.Background(), cfg.Model, cfg.Calib)
	if err != nil {
		return nil, err
	}
	work := prune.Work{Dir: fileio.Join(root, workKey(&cfg.Config, inputs))}
	done, err := resumable(context.Background(), work, fam, &cfg.Config, cfg.PlanOnly, cfg.logger())
	if err != nil {
		return nil, err
	}
	p := &Plan{Family: fam, Work: work, Done: done}
	if len(done) == 0 {
		warnStaleWork(context.Background(), root, fileio.Base(work.Dir), &cfg.Config, inputs, cfg.logger())
		tok, err := src.Tokenizer()
		if err != nil {
			return nil, fmt.Errorf("--model %s: tokenizer: %w", cfg.Model, err)
		}
		docs, err := readCorpus(cfg.Calib)
		if err != nil {
			return nil, fmt.Errorf("--calib: %w", err)
		}
		wins, err := calib.Windows(docs, tok, cfg.NSamples, cfg.SeqLen, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("--calib %s: %w", cfg.Calib, err)
		}
		for i, sh := range calib.Shard(wins, cfg.Shards) {
			ws := transforms.WindowShard{Index: i, SeqLen: cfg.SeqLen}
			for _, w := range sh {
				ws.Tokens = append(ws.Tokens, w...)
			}
			p.Windows = append(p.Windows, ws)
		}
	}
	if cfg.PlanOnly {
		return p, nil
	}
	if !fileio.IsRemote(cfg.Out) {
		removeStaleTemps(cfg.Out, processStart, cfg.logger())
	}
	if p.Work, err = newWork(work.Dir, &cfg.Config, inputs); err != nil {
		return nil, err
	}
	return p, nil
}

// checkTensors checks that src holds every tensor fam reads (embedding,
// every block, head), and that the linears have the shape [Out, In] fam
// gives them, so that a model whose configuration disagrees with its files
// (num_hidden_layers above the stored layers, a tensor left out of a shard,
// a wrong intermediate size in GGUF metadata) fails before any block runs
// rather than at the first block that needs it.
func checkTensors(src model.Source, fam model.Family) error {
	have := map[string]bool{}
	for _, n := range src.Names() {
		have[n] = true
	}
	need := append(fam.EmbedTensors(), fam.HeadTensors()...)
	for b := range fam.NumBlocks() {
		need = append(need, fam.BlockTensors(b)...)
	}
	for _, n := range need {
		if !have[n] {
			return fmt.Errorf("no tensor %q, which the model's configuration (config.json or GGUF metadata: %d layers, %s) needs", n, fam.NumBlocks(), src.Config().Architecture)
		}
	}
	// Linear shapes, where the source knows them without reading the data
	// (hf.Dir and gguf.Model do): a GGUF's metadata, or the config.json of
	// a family hf.CheckShape does not know, may disagree with the tensors.
	sh, ok := src.(interface{ Shape(string) ([]int, bool) })
	if !ok {
		return nil
	}
	for b := range fam.NumBlocks() {
		for _, l := range fam.Linears(b) {
			got, ok := sh.Shape(l.Weight())
			if ok && !slices.Equal(got, []int{l.Out, l.In}) {
				return fmt.Errorf("tensor %q has shape %v, the model's configuration (config.json or GGUF metadata) gives %v", l.Weight(), got, []int{l.Out, l.In})
			}
		}
	}
	return nil
}

// Build lays the pruning graph into s (see the package doc) and returns the
// PCollection<string> that holds the output directory once written (empty
// when cfg.StopAfter ends the run before the last block).
func Build(s beam.Scope, cfg *Config, plan *Plan) beam.PCollection {
	opts := transforms.Options{Config: cfg.Config, WorkDir: plan.Work.Dir, Threads: cfg.Threads}
	total := plan.Family.NumBlocks()
	n := total
	if cfg.StopAfter > 0 && cfg.StopAfter < n {
		n = cfg.StopAfter
	}
	start := len(plan.Done)
	var dones []beam.PCollection
	if start > 0 {
		dones = append(dones, beam.CreateList(s, plan.Done))
	}
	if start < n {
		var shards beam.PCollection
		if start == 0 {
			shards = transforms.Embed(s, beam.CreateList(s, plan.Windows), opts)
		} else {
			shards = beam.CreateList(s, plan.Done[start-1].Next)
		}
		for b := start; b < n; b++ {
			var done beam.PCollection
			shards, done = Section(s, b, total, shards, opts)
			dones = append(dones, done)
		}
	}
	if n < total || len(dones) == 0 {
		return beam.CreateList(s, []string{})
	}
	all := dones[0]
	if len(dones) > 1 {
		all = beam.Flatten(s, dones...)
	}
	return transforms.Write(s, all, cfg.Out, opts)
}

// Section lays out one block: it takes the shards entering block b
// (PCollection<transforms.Shard>) and returns the shards entering block b+1
// (empty after the last block) and the block's PCollection<prune.BlockDone>.
func Section(s beam.Scope, b, nblocks int, shards beam.PCollection, opts transforms.Options) (next, done beam.PCollection) {
	s = s.Scope(fmt.Sprintf("block%03d", b))
	batches := transforms.LoadBlock(s, b, opts)
	hessians := transforms.AccumulateHessian(s, transforms.Calibrate(s, b, shards, opts))
	masked := transforms.SelectMask(s, batches, hessians, opts)
	solved := transforms.SolveRowQPs(s, masked, hessians, opts)
	written := transforms.WriteBlock(s, b, solved, opts, hessians)
	if b+1 < nblocks {
		next = transforms.Propagate(s, b, shards, written, opts)
	} else {
		next = beam.CreateList(s, []transforms.Shard{})
	}
	done = transforms.MarkDone(s, b, written, next, opts)
	return next, done
}

// warnFewTokens warns when the calibration has fewer tokens than the widest
// pruned linear has inputs and the run uses the full Hessian (an update other than
// none, or a Hessian-based selector): H = XᵀX then has rank at most tokens <
// in, so the re-fit matches the calibration tokens almost exactly (a tiny
// reported error) and generalises badly. A newcomer's 2:4 prune with
// --nsamples 2 --seqlen 256 reported err_after 0.00046 and had perplexity 768.
func warnFewTokens(cfg *Config, fam model.Family, log *slog.Logger) {
	if cfg.Update == prune.UpdateNone && (cfg.Method == "magnitude" || cfg.Method == "wanda") {
		return
	}
	tokens := cfg.NSamples * cfg.SeqLen
	var widest model.Linear
	for i := range fam.NumBlocks() {
		for _, l := range fam.Linears(i) {
			if cfg.Prunable(l) && l.In > widest.In {
				widest = l
			}
		}
	}
	if tokens > 0 && tokens < widest.In {
		log.Warn("the calibration has fewer tokens than the widest linear has inputs: its Hessian is rank-deficient and the weight update will fit the calibration tokens, not the model; raise --nsamples or --seqlen",
			"tokens", tokens, "linear", widest.Name, "inputs", widest.In)
	}
}
