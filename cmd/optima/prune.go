package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/kernels/cuda"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
	"github.com/optima-llm/optima/stages/solve"
)

type pruneOptions struct {
	cfg      pipeline.Config
	dataDir  string
	run      runners.Config
	noProg   bool
	calibSet bool
	// keepWork is --keep-work: keep the work directory after a finished
	// run.
	keepWork bool
	// sparsitySet is whether --sparsity was given: with --pattern its
	// default is dropped, an explicit value is an error (Validate).
	sparsitySet bool
	// shardsSet is whether --shards was given (else it is capped at
	// --nsamples).
	shardsSet bool
	// evalTasks and evalLimit are --eval-tasks and --eval-limit; zeroShot
	// is the parsed list.
	evalTasks string
	evalLimit int
	zeroShot  []string
	// stdout and stderr receive the command's output (cobra's OutOrStdout
	// and ErrOrStderr, so tests can capture them).
	stdout, stderr io.Writer
	// comp are the quantization and adapter flags (compressflags.go);
	// changed reports whether a flag was given.
	comp    compressFlags
	changed func(string) bool
}

func newPruneCmd() *cobra.Command {
	o := &pruneOptions{}
	o.cfg.Solve = solve.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "prune --model PATH [--method {wanda,magnitude,sparsegpt,thanos,admm}] (--sparsity R | --pattern N:M) [--update {optima,own,none}] --out DIR",
		Short: "Prune a model block by block and re-fit every row exactly (OPTIMA)",
		Long: `prune calibrates the model on --nsamples windows of --seqlen tokens from --calib,
selects a mask per linear layer with --method, re-fits the kept weights of every row
exactly against the layer Hessian (--update optima), keeps the selector's own weight
update (--update own: SparseGPT, Thanos and ADMM only; magnitude and Wanda have
none) or only masks (--update none), and writes a Hugging Face model directory with
report.json to --out.

SparseGPT, Thanos and ADMM choose their mask on a whole linear layer at once (their
unstructured thresholds compare all rows of a column block, or of the layer), so
for them --row-batch is ignored and the unstructured sparsity holds per block or
layer, not per row. Their parameters go in --method-param KEY=VALUE: blocksize
(sparsegpt, thanos; default 128), damping (their own relative damping; default
0.01, admm 0.1), iters, prune_iters, rho (admm; defaults 20, 15, 1). --damping sets
only the --update optima solve.

An interrupted run started again with the same configuration resumes after the last
finished block (work files live in --work-dir, default OUT.work; a corrupt one is redone
with a warning, and the run's work directory is removed once the model is written unless
--keep-work).

--model, --calib, --out and --work-dir may be gs://bucket/path URLs. --runner local
(default) runs Beam's Prism runner in process; --runner flink submits to a Beam Flink
job server (--job-endpoint, --parallelism, --environment-type); --runner dataflow
submits to Google Cloud Dataflow (--project, --region, --staging-location,
--worker-machine-type, --worker-accelerator; --dry-run prints the job instead).
Remote workers need every path on gs://.

Quantization and adapters (SLiM): after each linear's mask and update, --bits B
quantizes its weights (--quant absmax, slim or gptq; --group-size, --scale-important)
keeping pruned weights exactly zero, and --lora-rank R fits a low-rank adapter to
what pruning and quantization lost (--lora-fit svd, slim, hessian). The adapter is
merged into the written weights, or with --separate-lora written as a PEFT adapter
directory OUT/adapter that optima eval merges on load. report.json gains each
layer's errors after pruning, quantization and the adapter, and the memory of the
compressed model. README.md maps every parameter of the reference's
prune_and_quantize to these flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.calibSet = cmd.Flags().Changed("calib")
			o.sparsitySet = cmd.Flags().Changed("sparsity")
			o.shardsSet = cmd.Flags().Changed("shards")
			o.changed = cmd.Flags().Changed
			o.stdout, o.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.Model, "model", "", "GGUF file or Hugging Face model directory")
	f.StringVar(&o.cfg.Method, "method", "wanda", "mask selector: magnitude, wanda, sparsegpt, thanos, admm")
	f.StringToStringVar(&o.cfg.MethodParams, "method-param", nil, "selector parameter KEY=VALUE, repeatable (sparsegpt/thanos: blocksize, damping; admm: damping, iters, prune_iters, rho)")
	f.Float64Var(&o.cfg.Sparsity, "sparsity", 0.5, "unstructured sparsity per output row, in [0, 1)")
	f.StringVar(&o.cfg.Pattern, "pattern", "", "N:M semi-structured pattern, e.g. 2:4 (instead of --sparsity)")
	f.StringVar(&o.cfg.Update, "update", "optima", "weight update after masking: optima (exact row re-fit), own (the selector's own update; sparsegpt, thanos, admm) or none")
	f.StringVar(&o.cfg.Calib, "calib", "", "calibration corpus, JSON Lines with a \"text\" field (default DATA/c4/c4_sample.jsonl)")
	f.IntVar(&o.cfg.NSamples, "nsamples", 128, "calibration windows")
	f.IntVar(&o.cfg.SeqLen, "seqlen", 2048, "tokens per calibration window")
	f.Uint64Var(&o.cfg.Seed, "seed", 0, "seed for drawing calibration windows")
	f.IntVar(&o.cfg.Shards, "shards", 2, "calibration sample shards processed in parallel (at most --nsamples)")
	f.IntVar(&o.cfg.RowBatch, "row-batch", 0, "weight rows per mask/solve element (0: whole layer, capped at 16 MiB)")
	f.BoolVar(&o.cfg.SkipAttention, "skip-attention", false, "leave attention projections (q, k, v, o) dense")
	f.BoolVar(&o.cfg.ShiftZeroMetrics, "shift-zero-metrics", false, "Wanda: add the smallest positive squared input norm to all before scoring (the reference's shift_zero_metrics)")
	o.comp.add(f)
	f.Float64Var(&o.cfg.Solve.Damping, "damping", o.cfg.Solve.Damping, "relative Hessian damping λ: H + λ·mean(diag H)·I")
	f.BoolVar(&o.cfg.Solve.Float64, "float64", o.cfg.Solve.Float64, "run the row solve's products in float64")
	f.StringVar(&o.cfg.Solve.Device, "device", "cpu", "where the row solve runs: cpu, or cuda (the first NVIDIA GPU; an error without one)")
	f.StringVar(&o.cfg.ForwardDevice, "forward-device", "cpu", "where the large GEMMs of each block's forward pass (calibration, propagation, --eval-tasks) run: cpu, or cuda (the first NVIDIA GPU, with or without --device cuda; an error without one). A GEMM goes to the GPU only above 8 FLOP/B per --threads thread (at least 64): it pays off only with few CPU threads per GPU or a large model; on a 32-thread H200 host SmolLM2's forward stays on the CPU (bench/cuda/README.md)")
	f.IntVar(&o.cfg.Solve.MaxIter, "cg-max-iter", o.cfg.Solve.MaxIter, "conjugate-gradient iterations per row before the direct fallback")
	f.Float64Var(&o.cfg.Solve.Tol, "cg-tol", o.cfg.Solve.Tol, "per-row relative residual that ends conjugate gradients")
	f.StringVar(&o.cfg.Out, "out", "", "output model directory (replaced atomically)")
	f.StringVar(&o.cfg.WorkRoot, "work-dir", "", "work directory for resumable state (default OUT.work)")
	f.IntVar(&o.cfg.Threads, "threads", 0, "compute threads per worker (0: all cores)")
	f.IntVar(&o.cfg.StopAfter, "stop-after-blocks", 0, "stop once this many blocks are done (0: all); rerun to resume")
	f.StringVar(&o.dataDir, "data-dir", "", "data directory of the default --calib and the --eval-tasks files (default: $OPTIMA_DATA, ../shared/data, ../../shared/data, shared/data)")
	runners.AddFlags(f, &o.run)
	f.BoolVar(&o.keepWork, "keep-work", false, "keep the work directory (finished blocks, hidden states) after a successful run; by default it is removed")
	f.BoolVar(&o.noProg, "no-progress", false, "no progress bar")
	f.StringVar(&o.evalTasks, "eval-tasks", "", "after pruning, score these zero-shot tasks (comma-separated: piqa, arc_easy, arc_challenge, winogrande, openbookqa, mmlu, or zeroshot for all) into report.json")
	f.IntVar(&o.evalLimit, "eval-limit", 0, "with --eval-tasks: only the first N items of each task (of each MMLU subject); 0: all")
	return cmd
}

// Complete fills defaults that depend on the environment.
func (o *pruneOptions) Complete() error {
	if o.evalTasks != "" {
		dir, err := resolveDataDir(o.dataDir)
		if err != nil {
			return err
		}
		o.dataDir = dir
	}
	if !o.calibSet {
		dir, err := resolveDataDir(o.dataDir)
		if err != nil {
			return err
		}
		o.cfg.Calib = filepath.Join(dir, "c4", "c4_sample.jsonl")
	}
	if o.cfg.Pattern != "" && !o.sparsitySet {
		o.cfg.Sparsity = 0
	}
	if o.cfg.Solve.Device == "cpu" {
		o.cfg.Solve.Device = "" // the default: keeps the configuration hash of CPU runs
	}
	if o.cfg.ForwardDevice == "cpu" {
		o.cfg.ForwardDevice = "" // likewise
	}
	// Before the paths are made absolute, which would turn a misspelt
	// "gs:/b/x" into a local path.
	if err := checkPathURLs([]pathFlag{{"--model", o.cfg.Model, runners.NeedBucket}, {"--calib", o.cfg.Calib, runners.NeedObject},
		{"--out", o.cfg.Out, runners.NeedPrefix}, {"--work-dir", o.cfg.WorkRoot, runners.NeedBucket}}); err != nil {
		return err
	}
	// Absolute paths: workers may run elsewhere, and the configuration hash
	// (which keys resumable work) must not depend on the working directory.
	for _, p := range []*string{&o.cfg.Model, &o.cfg.Calib, &o.cfg.Out, &o.cfg.WorkRoot} {
		if *p != "" && !fileio.IsRemote(*p) {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	changed := o.changed
	if changed == nil {
		changed = func(string) bool { return false }
	}
	comp, err := o.comp.options(changed)
	if err != nil {
		return err
	}
	o.cfg.Compress = comp
	// The sweep's quantization parameters come only from --bits,
	// --group-size and --scale-important: EnableJointSweep would silently
	// overwrite a --method-param that gives them too.
	for _, k := range []string{"bits", "group_size", "scale_important"} {
		if v, ok := o.cfg.MethodParams[k]; ok {
			return &flagError{"--method-param", k + "=" + v, "bits, group_size and scale_important quantize inside SparseGPT's sweep; ask for it with --bits B --quant gptq --update own (and --group-size, --scale-important) instead"}
		}
	}
	o.cfg.EnableJointSweep() // --method sparsegpt --update own --quant gptq: one sweep
	if !o.shardsSet && o.cfg.NSamples > 0 && o.cfg.Shards > o.cfg.NSamples {
		o.cfg.Shards = o.cfg.NSamples // the default 2 shards need 2 windows
	}
	return nil
}

// Validate checks the flags before any work starts (in particular before
// pipeline.Prepare creates the work directory), so that a rejected run
// leaves nothing behind.
func (o *pruneOptions) Validate() error {
	if o.cfg.Pattern != "" && o.cfg.Sparsity != 0 {
		return fmt.Errorf("give either --sparsity (%v) or --pattern (%q), not both", o.cfg.Sparsity, o.cfg.Pattern)
	}
	// Runner flags first: they are cheap to check and decide which paths
	// must be on shared storage.
	if err := o.run.Validate(); err != nil {
		return err
	}
	if o.evalTasks != "" {
		_, zs, err := parseTasks("--eval-tasks", o.evalTasks, false)
		if err != nil {
			return err
		}
		o.zeroShot = zs
	}
	if o.evalLimit < 0 {
		return &flagError{"--eval-limit", fmt.Sprint(o.evalLimit), "must not be negative"}
	}
	if o.evalTasks == "" && o.evalLimit != 0 {
		return &flagError{"--eval-limit", fmt.Sprint(o.evalLimit), "does nothing without --eval-tasks"}
	}
	// The data directory gives only the default --calib and the
	// --eval-tasks files; with neither it would be ignored.
	if o.dataDir != "" && o.calibSet && o.evalTasks == "" {
		return &flagError{"--data-dir", o.dataDir, "does nothing: it gives the default --calib and the --eval-tasks files, and --calib is given without --eval-tasks"}
	}
	// The conjugate-gradient and float64 settings belong to the exact row
	// re-fit; with another update nothing reads them.
	if o.changed != nil && o.cfg.Update != prune.UpdateOptima {
		for _, f := range []string{"cg-max-iter", "cg-tol", "float64"} {
			if o.changed(f) {
				return &flagError{"--" + f, "", fmt.Sprintf("sets the --update optima row solve; --update %s does not run it", o.cfg.Update)}
			}
		}
	}
	if err := checkTaskFiles("--eval-tasks", o.dataDir, o.zeroShot, o.evalLimit); err != nil {
		return err
	}
	if err := validateDevice(o.cfg.Solve.Device); err != nil {
		return err
	}
	if err := validateDeviceFlag("--forward-device", o.cfg.ForwardDevice); err != nil {
		return err
	}
	if err := o.run.CheckSharedPaths(map[string]string{"--model": o.cfg.Model, "--calib": o.cfg.Calib,
		"--out": o.cfg.Out, "--work-dir": o.cfg.WorkRoot}); err != nil {
		return err
	}
	if o.run.Remote() && o.cfg.WorkRoot == "" && !fileio.IsRemote(o.cfg.Out) {
		return &flagError{"--work-dir", "", "workers on other machines need a gs:// work directory"}
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	// Last: a network call (Flink's job server), after the cheap checks.
	return o.run.CheckReachable(context.Background())
}

// pathFlag is a path flag's name, value and what a gs:// value must name.
type pathFlag struct {
	flag, value string
	need        runners.URLNeed
}

// checkPathURLs checks the gs:// syntax of path flags (runners.CheckGCSURL)
// before anything reads them: internal/fileio would read "gs:///x" as the
// bucket "x", and "gs:/b/x" would be a local path.
func checkPathURLs(flags []pathFlag) error {
	for _, f := range flags {
		if err := runners.CheckGCSURL(f.flag, f.value, f.need); err != nil {
			return err
		}
	}
	return nil
}

// validateDevice accepts --device cpu (stored as "") and --device cuda when
// a GPU is usable; cuda without one is an error naming what is missing.
func validateDevice(d string) error { return validateDeviceFlag("--device", d) }

// validateDeviceFlag is validateDevice for the device flag named flag
// (--device, --forward-device; eval's --device).
func validateDeviceFlag(flag, d string) error {
	switch d {
	case "", "cpu":
		return nil
	case "cuda":
		if err := cuda.Available(); err != nil {
			return &flagError{flag, d, err.Error()}
		}
		return nil
	}
	return &flagError{flag, d, fmt.Sprintf("unknown device (known: %v)", solve.Devices())}
}

// Run prepares the plan, runs the pipeline with a progress bar over blocks,
// and prints the report's totals.
func (o *pruneOptions) Run(ctx context.Context) error {
	start := time.Now()
	o.cfg.PlanOnly = o.run.DryRun
	o.cfg.Log = newLineLogger(o.stderr)
	plan, err := pipeline.Prepare(&o.cfg)
	if err != nil {
		return err
	}
	n := plan.Family.NumBlocks()
	if len(plan.Done) > 0 {
		fmt.Fprintf(o.stderr, "resuming %s: blocks 0-%d already pruned\n", plan.Work.Dir, len(plan.Done)-1)
	}
	p, s := beam.NewPipelineWithRoot()
	pipeline.Build(s, &o.cfg, plan)

	if o.run.DryRun {
		o.run.Stdout = o.stdout
		_, err = runners.Execute(ctx, o.run, p)
		return err
	}
	stopBar := o.progress(ctx, plan, n)
	_, err = runners.Execute(ctx, o.run, p)
	stopBar()
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C: the runner's errors are only its RPCs being cancelled.
			return fmt.Errorf("interrupted: %w (finished blocks are kept in %s; run the same command again to resume)", context.Cause(ctx), plan.Work.Dir)
		}
		return fmt.Errorf("pipeline: %w (finished blocks are kept in %s; run the same command again to resume)", err, plan.Work.Dir)
	}
	if o.cfg.StopAfter > 0 && o.cfg.StopAfter < n {
		fmt.Fprintf(o.stdout, "stopped after %d of %d blocks; run the same command without --stop-after-blocks to finish\n", o.cfg.StopAfter, n)
		if len(o.zeroShot) > 0 {
			fmt.Fprintf(o.stdout, "--eval-tasks %s not scored: the model is not written yet; the finishing run scores it\n", strings.Join(o.zeroShot, ","))
		}
		return nil
	}
	raw, err := fileio.ReadFile(ctx, fileio.Join(o.cfg.Out, "report.json"))
	if err != nil {
		return err
	}
	var rep struct {
		Totals json.RawMessage `json:"totals"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	threads := o.cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	fmt.Fprintf(o.stdout, "wrote %s in %.0fs (%d threads); totals: %s\n", o.cfg.Out, time.Since(start).Seconds(), threads, rep.Totals)
	if o.keepWork {
		o.cfg.Log.Info("kept work directory (--keep-work)", "dir", plan.Work.Dir)
	} else if err := pipeline.RemoveWork(ctx, plan.Work, o.cfg.Log); err != nil {
		o.cfg.Log.Warn("the model is written, but its work directory could not be removed", "dir", plan.Work.Dir, "error", err)
	}
	if len(o.zeroShot) > 0 {
		return o.evalZeroShot(ctx)
	}
	return nil
}

// evalZeroShot scores the pruned model on --eval-tasks, adds the result to
// OUT/report.json and prints the table.
func (o *pruneOptions) evalZeroShot(ctx context.Context) error {
	src, err := loader.Open(o.cfg.Out)
	if err != nil {
		return fmt.Errorf("--eval-tasks: open %s: %w", o.cfg.Out, err)
	}
	defer src.Close()
	zs, err := zeroShotRun{src: src, dataDir: o.dataDir, tasks: o.zeroShot, limit: o.evalLimit, threads: o.cfg.Threads,
		device: o.cfg.ForwardDevice, stderr: o.stderr, noProg: o.noProg}.run(ctx)
	if err != nil {
		limit := ""
		if o.evalLimit > 0 {
			limit = fmt.Sprintf(" --limit %d", o.evalLimit)
		}
		return fmt.Errorf("--eval-tasks: %w (the pruned model is written to %s; score it with optima eval --model %s --task %s%s)",
			interrupted(ctx, err), o.cfg.Out, o.cfg.Out, strings.Join(o.zeroShot, ","), limit)
	}
	if err := addZeroShot(ctx, fileio.Join(o.cfg.Out, "report.json"), zs.reportSection()); err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "zero-shot accuracy of %s (%.0fs), added to report.json:\n", o.cfg.Out, zs.Seconds)
	return zs.writeText(o.stdout)
}

// addZeroShot is report.AddZeroShot for a local or gs:// report.json: a
// remote one is edited in a local copy and uploaded whole (one object
// upload, visible only when complete).
func addZeroShot(ctx context.Context, path string, z *report.ZeroShot) error {
	if !fileio.IsRemote(path) {
		return report.AddZeroShot(path, z)
	}
	raw, err := fileio.ReadFile(ctx, path)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "optima-report-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	local := filepath.Join(dir, "report.json")
	if err := os.WriteFile(local, raw, 0o644); err != nil {
		return err
	}
	if err := report.AddZeroShot(local, z); err != nil {
		return err
	}
	if raw, err = os.ReadFile(local); err != nil {
		return err
	}
	return fileio.WriteFile(ctx, path, raw)
}

// progress shows a bar over blocks, advanced by the done markers that appear
// in the work directory; the returned func stops it.
func (o *pruneOptions) progress(ctx context.Context, plan *pipeline.Plan, n int) func() {
	if o.noProg {
		return func() {}
	}
	bar := newBar(n, o.stderr,
		progressbar.OptionSetDescription("pruning blocks"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
	)
	bar.Set(len(plan.Done))
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				done := 0
				for b := 0; b < n; b++ {
					if ok, _ := fileio.Exists(ctx, plan.Work.DonePath(b)); !ok {
						break
					}
					done = b + 1
				}
				advanceBar(bar, done)
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
		bar.Finish()
	}
}
