package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/kernels/cpu"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/eval"
	"github.com/optima-llm/optima/stages/prune"
	"github.com/optima-llm/optima/stages/report"
)

// parseTasks splits a comma-separated task list (flag names the flag for
// errors) into WikiText-2 perplexity and zero-shot tasks, in the order
// given. "zeroshot" stands for all six zero-shot tasks. Duplicates and
// unknown names are errors.
func parseTasks(flag, list string, allowWiki bool) (wiki bool, zs []string, err error) {
	known := slices.Clone(eval.ZeroShotTasks)
	if allowWiki {
		known = append([]string{"wikitext2"}, known...)
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		var add []string
		switch {
		case name == "wikitext2" && allowWiki:
			if wiki {
				return false, nil, &flagError{flag, list, "task wikitext2 given twice"}
			}
			wiki = true
			continue
		case name == "zeroshot":
			add = eval.ZeroShotTasks
		case slices.Contains(eval.ZeroShotTasks, name):
			add = []string{name}
		default:
			return false, nil, &flagError{flag, list, fmt.Sprintf("unknown task %q (known: %s, or zeroshot for all six zero-shot tasks)", name, strings.Join(known, ","))}
		}
		for _, a := range add {
			if slices.Contains(zs, a) {
				return false, nil, &flagError{flag, list, fmt.Sprintf("task %s given twice", a)}
			}
			zs = append(zs, a)
		}
	}
	return wiki, zs, nil
}

// zeroShotRun is what runZeroShot needs.
type zeroShotRun struct {
	src     model.Source
	dataDir string
	tasks   []string
	limit   int
	threads int
	// device is where the forward's large GEMMs run: "", "cpu" or "cuda"
	// (evalBackend).
	device string
	// stderr receives the progress bar unless noProg.
	stderr io.Writer
	noProg bool
	// plain scores without context reuse (eval.Scorer.Plain).
	plain bool
	// samplesPath, if not empty, receives one eval.Sample per scored
	// document (eval.WriteSamplesFile), tasks in r.tasks order.
	samplesPath string
}

// checkTaskFiles loads the zero-shot tasks names from dataDir (the first
// limit items of each; 0: all) and drops them, so that a missing or
// malformed file is an error naming flag and the file before any long work
// (pruning, the WikiText-2 perplexity) rather than after it.
func checkTaskFiles(flag, dataDir string, names []string, limit int) error {
	for _, name := range names {
		if _, err := eval.LoadTask(dataDir, name, limit); err != nil {
			return fmt.Errorf("%s %s: %w", flag, name, err)
		}
	}
	return nil
}

// mmluSubjects is the number of MMLU subjects (hendrycks_test, the
// harness's mmlu group).
const mmluSubjects = 57

// zeroShotOutput is the zero-shot part of `optima eval --json`.
type zeroShotOutput struct {
	eval.Summary
	Limit   int     `json:"limit,omitempty"`
	Seconds float64 `json:"seconds"`
}

// run loads the tasks from the data directory and scores them in one
// batched pass over the model, with a progress bar over sequence-steps.
func (r zeroShotRun) run(ctx context.Context) (zeroShotOutput, error) {
	fam, err := model.New(r.src.Config())
	if err != nil {
		return zeroShotOutput{}, fmt.Errorf("--model %s: %w", r.src.Path(), err)
	}
	tok, err := r.src.Tokenizer()
	if err != nil {
		return zeroShotOutput{}, fmt.Errorf("--model %s: tokenizer: %w", r.src.Path(), err)
	}
	var tasks []*eval.Task
	for _, name := range r.tasks {
		t, err := eval.LoadTask(r.dataDir, name, r.limit)
		if err != nil {
			return zeroShotOutput{}, err
		}
		if name == "mmlu" {
			if subs, err := eval.MMLUSubjects(r.dataDir); err == nil && len(subs) < mmluSubjects {
				fmt.Fprintf(r.stderr, "warning: mmlu: %s holds %d of its %d subjects; the accuracy is over those only, not MMLU's\n",
					filepath.Join(r.dataDir, eval.MMLUTestDir), len(subs), mmluSubjects)
			}
		}
		tasks = append(tasks, t)
	}
	var (
		progress func(done, total int)
		bar      *progressBar
	)
	if !r.noProg {
		bar = newProgressBar("zero-shot "+strings.Join(r.tasks, ","), r.stderr)
		progress = bar.update
	}
	load, withAdapter, err := adapterLoader(r.src.Path(), r.src.Names(), eval.SourceLoader(r.src))
	if err != nil {
		return zeroShotOutput{}, err
	}
	if withAdapter {
		fmt.Fprintf(r.stderr, "merging the adapter in %s/%s\n", r.src.Path(), prune.AdapterDir)
	}
	be, err := evalBackend(r.threads, r.device)
	if err != nil {
		return zeroShotOutput{}, err
	}
	s := &eval.Scorer{Backend: be, Family: fam, Load: load, Tokenizer: tok, Plain: r.plain}
	start := time.Now()
	res, err := s.Evaluate(ctx, tasks, progress)
	if err != nil {
		bar.clear()
		return zeroShotOutput{}, err
	}
	// A NaN log-likelihood still wins an argmax (numpy's rule, which the
	// harness follows), so a model with non-finite logits would get an
	// accuracy that looks like a result.
	for _, t := range res {
		bad, n := 0, 0
		for _, item := range t.LogLiks {
			for _, v := range item {
				n++
				if math.IsNaN(v) || math.IsInf(v, 0) {
					bad++
				}
			}
		}
		if bad > 0 {
			return zeroShotOutput{}, fmt.Errorf("--model %s: %s: the log-likelihoods of %d of %d choices are not finite (NaN or ±Inf): the model's logits are not finite",
				r.src.Path(), t.Task, bad, n)
		}
	}
	if r.samplesPath != "" {
		var samples []eval.Sample
		for i, t := range tasks {
			samples = append(samples, eval.Samples(t, res[i])...)
		}
		if err := eval.WriteSamplesFile(r.samplesPath, samples); err != nil {
			return zeroShotOutput{}, fmt.Errorf("--log-samples: %w", err)
		}
	}
	return zeroShotOutput{Summary: eval.Summarize(res), Limit: r.limit, Seconds: time.Since(start).Seconds()}, nil
}

// reportSection converts the output for report.json.
func (z zeroShotOutput) reportSection() *report.ZeroShot {
	out := &report.ZeroShot{AverageAcc: z.Average, Limit: z.Limit, Seconds: z.Seconds}
	for _, t := range z.Tasks {
		out.Tasks = append(out.Tasks, report.TaskAccuracy{Task: t.Task, Items: t.Items, Acc: t.Acc, AccNorm: t.AccNorm, Subjects: len(t.Subjects)})
	}
	return out
}

// writeText prints one line per task and the average.
func (z zeroShotOutput) writeText(w io.Writer) error {
	return z.reportSection().WriteText(w)
}

// evalBackend is the backend of the eval forward passes: the CPU backend
// with threads goroutines, with its large GEMMs on the GPU for device
// "cuda" (prune.ForwardBackend: the process's shared CUDA backend,
// prune.GemmRouteFor of the CPU backend's threads). "" and "cpu" give the CPU backend itself. A
// missing GPU is an error wrapping cuda.ErrUnavailable.
func evalBackend(threads int, device string) (kernels.Backend, error) {
	return prune.ForwardBackend(cpu.New(threads), "", device)
}
