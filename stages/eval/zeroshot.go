package eval

import (
	"context"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"

	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/tokenizer"
)

// SubjectResult is one MMLU subject's accuracy.
type SubjectResult struct {
	Acc   float64 `json:"acc"`
	Items int     `json:"items"`
	// AccStderr is the harness's mean_stderr of the subject's 0/1 scores;
	// nil, and left out of the JSON, for a subject of one item, where the
	// harness reports "N/A" (lm_eval/evaluator_utils.py, 0.4.13: a stderr
	// only when len(items) > 1).
	AccStderr *float64 `json:"acc_stderr,omitempty"`
}

// TaskResult is a zero-shot task's score, as lm-evaluation-harness reports
// it.
type TaskResult struct {
	Task string `json:"task"`
	// Items is the number of documents scored.
	Items int `json:"items"`
	// Acc is the fraction of items whose gold choice has the highest summed
	// log-likelihood (ties go to the first choice, numpy.argmax).
	Acc float64 `json:"acc"`
	// AccStderr is the harness's mean_stderr: the sample standard deviation
	// of the per-item scores over sqrt(items); for MMLU (Subjects set) the
	// harness's group stderr instead, MMLUGroups' PooledSampleStderr over
	// the subjects (which leaves out the spread between subjects' means,
	// so it is not mean_stderr over all items). It is nil, and left out of
	// the JSON, where the harness reports "N/A": a task of one item, or an
	// MMLU with a subject of one item (GroupResult.AccStderr).
	AccStderr *float64 `json:"acc_stderr,omitempty"`
	// AccNorm divides each choice's log-likelihood by its length in
	// characters before the argmax; nil where the harness does not report it
	// (WinoGrande, MMLU).
	AccNorm *float64 `json:"acc_norm,omitempty"`
	// AccNormStderr is AccNorm's mean_stderr; nil where AccNorm is, or
	// where the harness reports "N/A" (one item).
	AccNormStderr *float64 `json:"acc_norm_stderr,omitempty"`
	// Subjects holds MMLU's per-subject accuracies; Acc is then their mean
	// weighted by size (the harness's mmlu group: weight_by_size), which is
	// the mean over all items (computed as that mean; the harness's
	// Σ acc_i·n_i / Σ n_i is MMLUGroups' and may differ in the last bit).
	Subjects map[string]SubjectResult `json:"subjects,omitempty"`
	// Categories holds MMLUGroups' aggregates of the harness's MMLU
	// categories ("stem", "other", "social_sciences", "humanities") that
	// have subjects here.
	Categories map[string]GroupResult `json:"categories,omitempty"`
	// LogLiks are the per-item, per-choice log-likelihoods (not in JSON).
	LogLiks [][]float64 `json:"-"`
	// Greedy[i][c] is LogLik.Greedy of item i's choice c (not in JSON);
	// set by Evaluate, nil from Aggregate.
	Greedy [][]bool `json:"-"`
}

// Scorer holds what scoring needs: the backend, the family, a weight loader
// and the tokenizer.
type Scorer struct {
	Backend   kernels.Backend
	Family    model.Family
	Load      Loader
	Tokenizer tokenizer.Tokenizer
	// MaxLength is the harness's max_length (0: the model's
	// max_position_embeddings).
	MaxLength int
	// Plain scores with PlainLogLikelihoods (one forward per input
	// sequence, no context reuse), to compare with the prefix path.
	Plain bool
}

// Requests encodes every choice of items with EncodePair, item by item and
// choice by choice. Errors name the item.
func (s *Scorer) Requests(items []Item) ([]Request, error) {
	var reqs []Request
	for i, it := range items {
		if len(it.Contexts) != len(it.Continuations) || len(it.Contexts) != len(it.Choices) {
			panic(fmt.Sprintf("eval: item %d has %d contexts, %d continuations and %d choices", i, len(it.Contexts), len(it.Continuations), len(it.Choices)))
		}
		for c := range it.Contexts {
			r, err := EncodePair(s.Tokenizer, it.Contexts[c], it.Continuations[c])
			if err != nil {
				return nil, fmt.Errorf("item %d choice %d: %w", i, c, err)
			}
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// Evaluate scores tasks: it encodes every choice of every task (Requests),
// computes all log-likelihoods in one batched LogLikelihoods call
// (PlainLogLikelihoods when s.Plain; either way the weights are loaded once
// per pass, not once per task), and aggregates acc
// (and acc_norm when a task's HasNorm) as lm_eval/api/task.py
// process_results and the mean aggregation do. progress is passed to
// LogLikelihoods. A task without items is an error, and so is a choice
// whose continuation is longer than the maximum length (naming the task,
// item and choice).
func (s *Scorer) Evaluate(ctx context.Context, tasks []*Task, progress func(done, total int)) ([]TaskResult, error) {
	var reqs []Request
	maxLen := effectiveMaxLen(s.Family.Config(), s.MaxLength)
	for _, t := range tasks {
		if len(t.Items) == 0 {
			return nil, fmt.Errorf("eval: task %s has no items", t.Name)
		}
		r, err := s.Requests(t.Items)
		if err != nil {
			return nil, fmt.Errorf("eval: %s: %w", t.Name, err)
		}
		// Checked here, where the item is known (LogLikelihoods would
		// name only the request's index among all tasks').
		k := 0
		for i, it := range t.Items {
			for c := range it.Contexts {
				if n := len(r[k].Continuation); n > maxLen {
					return nil, fmt.Errorf("eval: %s: item %d choice %d: continuation of %d tokens exceeds the maximum length %d", t.Name, i, c, n, maxLen)
				}
				k++
			}
		}
		reqs = append(reqs, r...)
	}
	score := LogLikelihoods
	if s.Plain {
		score = PlainLogLikelihoods
	}
	lls, err := score(ctx, s.Backend, s.Family, s.Load, reqs, s.MaxLength, progress)
	if err != nil {
		return nil, err
	}
	var out []TaskResult
	k := 0
	for _, t := range tasks {
		per := make([][]float64, len(t.Items))
		greedy := make([][]bool, len(t.Items))
		for i, it := range t.Items {
			per[i] = make([]float64, len(it.Choices))
			greedy[i] = make([]bool, len(it.Choices))
			for c := range it.Choices {
				per[i][c] = lls[k].LogProb
				greedy[i][c] = lls[k].Greedy
				k++
			}
		}
		r := Aggregate(t, per)
		r.Greedy = greedy
		out = append(out, r)
	}
	return out, nil
}

// Aggregate turns per-item, per-choice log-likelihoods (lls[i][c] for
// task.Items[i]'s choice c) into a TaskResult. It panics if the shapes
// differ from task's.
func Aggregate(task *Task, lls [][]float64) TaskResult {
	if len(lls) != len(task.Items) {
		panic(fmt.Sprintf("eval: %d log-likelihood rows for %d items", len(lls), len(task.Items)))
	}
	res := TaskResult{Task: task.Name, Items: len(task.Items), LogLiks: lls}
	acc := make([]float64, len(lls))
	norm := make([]float64, len(lls))
	type sub struct {
		n, correct int
		scores     []float64
	}
	subs := map[string]*sub{}
	for i, it := range task.Items {
		if len(lls[i]) != len(it.Choices) {
			panic(fmt.Sprintf("eval: item %d: %d log-likelihoods for %d choices", i, len(lls[i]), len(it.Choices)))
		}
		pred, predNorm, _ := scoreItem(it, lls[i])
		if pred == it.Gold {
			acc[i] = 1
		}
		if predNorm == it.Gold {
			norm[i] = 1
		}
		if it.Subject != "" {
			s := subs[it.Subject]
			if s == nil {
				s = &sub{}
				subs[it.Subject] = s
			}
			s.n++
			s.correct += int(acc[i])
			s.scores = append(s.scores, acc[i])
		}
	}
	res.Acc, res.AccStderr = meanStderrNA(acc)
	if task.HasNorm {
		var m float64
		m, res.AccNormStderr = meanStderrNA(norm)
		res.AccNorm = &m
	}
	if len(subs) > 0 {
		res.Subjects = map[string]SubjectResult{}
		for name, s := range subs {
			_, se := meanStderrNA(s.scores)
			res.Subjects[name] = SubjectResult{Acc: float64(s.correct) / float64(s.n), Items: s.n, AccStderr: se}
		}
		var mmlu GroupResult
		mmlu, res.Categories = MMLUGroups(res.Subjects)
		res.AccStderr = mmlu.AccStderr
	}
	return res
}

// scoreItem returns the harness's pred (argmax of the log-likelihoods),
// pred_norm (argmax of each divided by its choice's length) and those
// lengths (completion_len: Unicode code points, Python's len) for one item
// (lm_eval/api/task.py process_results, output_type multiple_choice).
func scoreItem(it Item, lls []float64) (pred, predNorm int, lens []int) {
	lens = make([]int, len(it.Choices))
	scaled := make([]float64, len(it.Choices))
	for c, ch := range it.Choices {
		lens[c] = utf8.RuneCountInString(ch)
		scaled[c] = lls[c] / float64(lens[c])
	}
	return argmax(lls), argmax(scaled), lens
}

// argmax is numpy.argmax: the first index of the maximum (a NaN wins, as
// in numpy).
func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if math.IsNaN(x) {
			return i
		}
		if x > v[best] {
			best = i
		}
	}
	return best
}

// meanStderr returns the mean of x and the harness's mean_stderr,
// sqrt(Σ(x-mean)²/(n-1)) / sqrt(n) (0 for n < 2).
func meanStderr(x []float64) (mean, stderr float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/float64(len(x)-1)) / math.Sqrt(float64(len(x)))
}

// meanStderrNA is meanStderr with the harness's "N/A" (a nil stderr) for
// fewer than two scores, where the sample standard deviation is undefined
// (lm_eval/evaluator_utils.py, 0.4.13: stderr_fn(items) if len(items) > 1
// else "N/A").
func meanStderrNA(x []float64) (mean float64, stderr *float64) {
	mean, se := meanStderr(x)
	if len(x) < 2 {
		return mean, nil
	}
	return mean, &se
}

// Summary is the result of several zero-shot tasks.
type Summary struct {
	Tasks []TaskResult `json:"tasks"`
	// Average is the unweighted mean of the tasks' acc (OPTIMA's Table 1
	// average over its six tasks).
	Average float64 `json:"average_acc"`
	// AverageNorm is the unweighted mean of acc_norm where a task reports it
	// and acc otherwise.
	AverageNorm float64 `json:"average_acc_norm_or_acc"`
}

// Summarize averages results (which must not be empty).
func Summarize(results []TaskResult) Summary {
	if len(results) == 0 {
		panic("eval: Summarize of no results")
	}
	s := Summary{Tasks: results}
	for _, r := range results {
		s.Average += r.Acc
		if r.AccNorm != nil {
			s.AverageNorm += *r.AccNorm
		} else {
			s.AverageNorm += r.Acc
		}
	}
	s.Average /= float64(len(results))
	s.AverageNorm /= float64(len(results))
	return s
}

// SubjectNames returns the keys of r.Subjects, sorted.
func (r TaskResult) SubjectNames() []string {
	names := make([]string, 0, len(r.Subjects))
	for n := range r.Subjects {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
