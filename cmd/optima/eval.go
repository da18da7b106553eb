package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/prune"
)

type evalOptions struct {
	modelPath  string
	task       string
	seqlen     int
	maxWindows int
	dataDir    string
	threads    int
	jsonOut    bool
	noProg     bool
	limit      int
	// logSamples is --log-samples: where to write one JSON Lines record
	// per scored zero-shot document ("": nowhere).
	logSamples string
	// plain scores zero-shot tasks without reusing shared contexts
	// (eval.Scorer.Plain), to time the prefix path against.
	plain bool
	// device is --device: where the forward's large GEMMs run ("cpu" is
	// the default, "cuda"; evalBackend).
	device string
	// wiki and zeroShot are the parsed --task list.
	wiki     bool
	zeroShot []string
	// stdout and stderr receive the command's output (cobra's OutOrStdout
	// and ErrOrStderr, so tests can capture them).
	stdout, stderr io.Writer
	// changed reports whether a flag was given (nil: none).
	changed func(string) bool
}

func newEvalCmd() *cobra.Command {
	o := &evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval --model PATH [--task wikitext2,piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu|zeroshot] [--seqlen 2048] [--max-windows N] [--limit N] [--json]",
		Short: "Evaluate a model: WikiText-2 perplexity as the pruning papers compute it, zero-shot accuracy as lm-evaluation-harness does",
		Long: `eval computes WikiText-2 perplexity as the pruning papers do, and zero-shot accuracy
(piqa, arc_easy, arc_challenge, winogrande, openbookqa, mmlu; "zeroshot" for all six) as
lm-evaluation-harness 0.4 scores it. A model directory that holds a PEFT LoRA adapter in
MODEL/adapter (optima prune --separate-lora) is evaluated with the adapter merged on load
(W + B·A), so perplexity and accuracy reflect it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.stdout, o.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			o.changed = cmd.Flags().Changed
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
	f.StringVar(&o.modelPath, "model", "", "GGUF file or Hugging Face model directory")
	f.StringVar(&o.task, "task", "wikitext2", "comma-separated tasks: wikitext2, piqa, arc_easy, arc_challenge, winogrande, openbookqa, mmlu (zeroshot: all six)")
	f.IntVar(&o.limit, "limit", 0, "zero-shot tasks: score only the first N items of each task (of each MMLU subject); 0: all")
	f.StringVar(&o.logSamples, "log-samples", "", "zero-shot tasks: write one JSON Lines record per scored document (task, subject, doc_id, target, lls, is_greedy, completion_len, pred, pred_norm, acc, acc_norm) to PATH, gzipped when PATH ends in .gz (lm-evaluation-harness's --log_samples)")
	f.IntVar(&o.seqlen, "seqlen", 2048, "tokens per window")
	f.IntVar(&o.maxWindows, "max-windows", 0, "evaluate only the first N windows (0: all)")
	f.StringVar(&o.dataDir, "data-dir", "", "data directory (default: $OPTIMA_DATA, ../shared/data, ../../shared/data, shared/data)")
	f.IntVar(&o.threads, "threads", 0, "compute threads (0: all cores)")
	f.StringVar(&o.device, "device", "cpu", "where the forward pass's large GEMMs run: cpu, or cuda (the first NVIDIA GPU; an error without one). A GEMM goes to the GPU only above 8 FLOP/B per --threads thread (at least 64): it pays off only with few CPU threads per GPU or a large model; on a 32-thread H200 host SmolLM2's forward stays on the CPU (bench/cuda/README.md)")
	f.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	f.BoolVar(&o.noProg, "no-progress", false, "no progress bar")
	f.BoolVar(&o.plain, "plain-scoring", false, "zero-shot: run every choice's whole sequence instead of running a shared context once (for timing comparisons)")
	_ = f.MarkHidden("plain-scoring")
	return cmd
}

// Complete resolves the data directory.
func (o *evalOptions) Complete() error {
	d, err := resolveDataDir(o.dataDir)
	if err != nil {
		return err
	}
	o.dataDir = d
	if o.threads < 0 {
		return &flagError{"--threads", fmt.Sprint(o.threads), "must not be negative (0: all cores)"}
	}
	if o.threads == 0 {
		o.threads = runtime.GOMAXPROCS(0)
	}
	return nil
}

// Validate checks the flags.
func (o *evalOptions) Validate() error {
	if o.modelPath == "" {
		return &flagError{"--model", "", "required"}
	}
	if err := checkPathURLs([]pathFlag{{"--model", o.modelPath, runners.NeedBucket}}); err != nil {
		return err
	}
	wiki, zs, err := parseTasks("--task", o.task, true)
	if err != nil {
		return err
	}
	o.wiki, o.zeroShot = wiki, zs
	if o.limit < 0 {
		return &flagError{"--limit", fmt.Sprint(o.limit), "must not be negative"}
	}
	if o.seqlen < 2 {
		return &flagError{"--seqlen", fmt.Sprint(o.seqlen), "must be at least 2"}
	}
	if o.maxWindows < 0 {
		return &flagError{"--max-windows", fmt.Sprint(o.maxWindows), "must not be negative"}
	}
	if o.changed != nil && o.changed("limit") && len(o.zeroShot) == 0 {
		return &flagError{"--limit", fmt.Sprint(o.limit), "applies to zero-shot tasks; --task has none"}
	}
	if o.logSamples != "" || (o.changed != nil && o.changed("log-samples")) {
		if len(o.zeroShot) == 0 {
			return &flagError{"--log-samples", o.logSamples, "applies to zero-shot tasks; --task has none"}
		}
		if err := eval.CheckSamplesPath(o.logSamples); err != nil {
			return &flagError{"--log-samples", o.logSamples, err.Error()}
		}
	}
	if o.changed != nil && o.changed("max-windows") && !o.wiki {
		return &flagError{"--max-windows", fmt.Sprint(o.maxWindows), "applies to --task wikitext2, which is not asked for"}
	}
	if o.changed != nil && o.changed("seqlen") && !o.wiki {
		return &flagError{"--seqlen", fmt.Sprint(o.seqlen), "is the window of --task wikitext2, which is not asked for (zero-shot requests are cut to the model's context, as lm-evaluation-harness does)"}
	}
	if err := validateDeviceFlag("--device", o.device); err != nil {
		return err
	}
	return checkTaskFiles("--task", o.dataDir, o.zeroShot, o.limit)
}

type evalResult struct {
	Model      string    `json:"model"`
	Task       string    `json:"task"`
	Perplexity float64   `json:"perplexity"`
	NLL        float64   `json:"nll"`
	Tokens     int       `json:"tokens"`
	Windows    int       `json:"windows"`
	Seqlen     int       `json:"seqlen"`
	WindowNLL  []float64 `json:"window_nll"`
	Seconds    float64   `json:"seconds"`
	TokensPerS float64   `json:"tokens_per_second"`
}

// Run evaluates the requested tasks and prints the results: the perplexity
// output alone for --task wikitext2 (unchanged), otherwise the zero-shot
// table (JSON: the tasks, their average, and the perplexity result under
// "wikitext2" when it was asked for too).
func (o *evalOptions) Run(ctx context.Context) error {
	src, err := loader.Open(o.modelPath)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	defer src.Close()
	var wiki *evalResult
	if o.wiki {
		if wiki, err = o.perplexity(ctx, src); err != nil {
			return interrupted(ctx, err)
		}
		if len(o.zeroShot) == 0 {
			return o.print(wiki)
		}
	}
	zs, err := zeroShotRun{src: src, dataDir: o.dataDir, tasks: o.zeroShot, limit: o.limit, threads: o.threads,
		device: o.device, stderr: o.stderr, noProg: o.noProg, plain: o.plain, samplesPath: o.logSamples}.run(ctx)
	if err != nil {
		return interrupted(ctx, err)
	}
	if o.jsonOut {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Model string `json:"model"`
			zeroShotOutput
			WikiText2 *evalResult `json:"wikitext2,omitempty"`
		}{o.modelPath, zs, wiki})
	}
	if wiki != nil {
		if err := o.print(wiki); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.stdout, "%s zero-shot (%.0fs):\n", o.modelPath, zs.Seconds)
	return zs.writeText(o.stdout)
}

// interrupted returns err, or when ctx was cancelled (Ctrl-C) an error that
// says so instead of the bare "context canceled" of whatever step stopped.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	return err
}

// perplexity computes the WikiText-2 perplexity.
func (o *evalOptions) perplexity(ctx context.Context, src model.Source) (*evalResult, error) {
	fam, err := model.New(src.Config())
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", o.modelPath, err)
	}
	if mp := src.Config().MaxPositionEmbeddings; mp > 0 && o.seqlen > mp {
		return nil, &flagError{"--seqlen", fmt.Sprint(o.seqlen), fmt.Sprintf("longer than the model's context of %d tokens", mp)}
	}
	tok, err := src.Tokenizer()
	if err != nil {
		return nil, fmt.Errorf("--model %s: tokenizer: %w", o.modelPath, err)
	}
	text, err := eval.WikiText2Text(o.dataDir)
	if err != nil {
		return nil, err
	}
	ids := eval.Tokenize(tok, text)
	var (
		progress func(done, total int)
		bar      *progressBar
	)
	if !o.noProg {
		bar = newProgressBar("wikitext2", o.stderr)
		progress = bar.update
	}
	load, withAdapter, err := adapterLoader(o.modelPath, src.Names(), eval.SourceLoader(src))
	if err != nil {
		return nil, err
	}
	if withAdapter {
		fmt.Fprintf(o.stderr, "merging the adapter in %s/%s\n", o.modelPath, prune.AdapterDir)
	}
	be, err := evalBackend(o.threads, o.device)
	if err != nil {
		return nil, &flagError{"--device", o.device, err.Error()}
	}
	start := time.Now()
	res, err := eval.Perplexity(ctx, be, fam, load, ids, o.seqlen, o.maxWindows, progress)
	if err != nil {
		bar.clear()
		return nil, err
	}
	for i, v := range res.WindowNLL {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--model %s: wikitext2: window %d's NLL is %v: the model's logits are not finite", o.modelPath, i, v)
		}
	}
	secs := time.Since(start).Seconds()
	return &evalResult{Model: o.modelPath, Task: "wikitext2", Perplexity: res.Perplexity, NLL: res.NLL, Tokens: res.Tokens,
		Windows: res.Windows, Seqlen: res.Seqlen, WindowNLL: res.WindowNLL, Seconds: secs, TokensPerS: float64(res.Tokens) / secs}, nil
}

// print writes the perplexity result as JSON or one line of text.
func (o *evalOptions) print(out *evalResult) error {
	if o.jsonOut {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(o.stdout, "%s %s: perplexity %.4f over %d windows of %d tokens (%.0fs, %.0f tokens/s)\n",
		o.modelPath, out.Task, out.Perplexity, out.Windows, out.Seqlen, out.Seconds, out.TokensPerS)
	return nil
}

// progressBar is the eval commands' progress bar over total steps, drawn
// on w from the first update (a nil *progressBar does nothing).
type progressBar struct {
	desc string
	w    io.Writer
	bar  *progressbar.ProgressBar
}

func newProgressBar(desc string, w io.Writer) *progressBar { return &progressBar{desc: desc, w: w} }

// update is the progress callback: done of total steps.
func (p *progressBar) update(done, total int) {
	if p.bar == nil {
		p.bar = newBar(total, p.w, progressbar.OptionSetDescription(p.desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true))
	}
	p.bar.Set(done)
	if done == total {
		p.bar.Finish()
	}
}

// clear removes a bar left unfinished (the run failed or was interrupted),
// so that the error printed next starts its own line.
func (p *progressBar) clear() {
	if p != nil && p.bar != nil && !p.bar.IsFinished() {
		p.bar.Clear()
	}
}
