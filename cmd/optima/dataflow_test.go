package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/internal/fileio/gcstest"
)

// TestDataflowDryRun runs `optima prune --runner dataflow --dry-run` with
// gs:// paths on a GCS emulator and no cloud account: it prints the job it
// would submit (with the GPU options) and writes no model.
func TestDataflowDryRun(t *testing.T) {
	f := newFixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	ents, _ := os.ReadDir(f.model)
	for _, e := range ents {
		if err := fileio.CopyFile(ctx, filepath.Join(f.model, e.Name()), "gs://bkt/models/tiny/"+e.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fileio.CopyFile(ctx, f.corpus, "gs://bkt/data/calib.jsonl"); err != nil {
		t.Fatal(err)
	}
	args := replace(replace(f.pruneArgs("gs://bkt/out/pruned"), f.model, "gs://bkt/models/tiny"), f.corpus, "gs://bkt/data/calib.jsonl")
	args = append(args, "--runner", "dataflow", "--project", "my-proj", "--region", "us-central1",
		"--staging-location", "gs://bkt/staging", "--worker-machine-type", "g2-standard-8",
		"--worker-accelerator", "type:nvidia-l4;count:1;install-nvidia-driver", "--job-name", "optima-tiny", "--dry-run")
	stdout, _ := mustOptima(t, args...)
	var got struct {
		Job struct {
			Name        string `json:"name"`
			Environment struct {
				ServiceOptions []string `json:"serviceOptions"`
				WorkerPools    []struct {
					MachineType string `json:"machineType"`
				} `json:"workerPools"`
			} `json:"environment"`
		} `json:"job"`
		Transforms int `json:"pipeline_transforms"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("dry run printed no JSON job: %v\n%s", err, stdout)
	}
	if got.Job.Name != "optima-tiny" || len(got.Job.Environment.WorkerPools) != 1 ||
		got.Job.Environment.WorkerPools[0].MachineType != "g2-standard-8" ||
		strings.Join(got.Job.Environment.ServiceOptions, ",") != "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" {
		t.Errorf("dry-run job: %+v", got.Job)
	}
	// Two blocks of six stages and the model writer: dozens of transforms.
	if got.Transforms < 20 {
		t.Errorf("dry-run pipeline has %d transforms, want the whole pruning graph", got.Transforms)
	}
	if written, _ := fileio.Glob(ctx, "gs://bkt/out/**"); len(written) != 0 {
		t.Errorf("a dry run wrote %v", written)
	}
}

// TestPruneGCS runs `optima prune` with the model, corpus and output on a
// GCS emulator: the model lands on gs:// with its report, the work
// directory is removed, and the weights equal a local run's.
func TestPruneGCS(t *testing.T) {
	f := newFixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	ents, _ := os.ReadDir(f.model)
	for _, e := range ents {
		if err := fileio.CopyFile(ctx, filepath.Join(f.model, e.Name()), "gs://bkt/models/tiny/"+e.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fileio.CopyFile(ctx, f.corpus, "gs://bkt/data/calib.jsonl"); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "out")
	mustOptima(t, f.pruneArgs(local, "--threads", "2")...)
	args := replace(replace(f.pruneArgs("gs://bkt/out/pruned", "--threads", "2"), f.model, "gs://bkt/models/tiny"), f.corpus, "gs://bkt/data/calib.jsonl")
	stdout, _ := mustOptima(t, args...)
	if !strings.Contains(stdout, "wrote gs://bkt/out/pruned") {
		t.Errorf("stdout %q does not name the gs:// output", stdout)
	}
	if left, _ := fileio.Glob(ctx, "gs://bkt/out/pruned.work/**"); len(left) != 0 {
		t.Errorf("work files left after a finished run: %v", left)
	}
	dl := filepath.Join(t.TempDir(), "downloaded")
	for _, n := range []string{"config.json", "model.safetensors", "report.json", "tokenizer.json", "tokenizer_config.json"} {
		b, err := fileio.ReadFile(ctx, "gs://bkt/out/pruned/"+n)
		if err != nil {
			t.Fatal(err)
		}
		if err := fileio.WriteFile(ctx, filepath.Join(dl, n), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := sameBits(weights(t, local), weights(t, dl)); err != nil {
		t.Errorf("gs:// run vs local run: %v", err)
	}
}

// TestPruneEvalTasksGCS: prune --eval-tasks with a gs:// --out scores the
// uploaded model and adds the zero-shot section to the report.json object,
// as it does for a local --out.
func TestPruneEvalTasksGCS(t *testing.T) {
	f := newFixture(t)
	writeZeroShotData(t, f.data, 4)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	out := "gs://bkt/out/pruned"
	mustOptima(t, f.pruneArgs(out, "--threads", "2", "--data-dir", f.data, "--eval-tasks", "arc_easy", "--eval-limit", "3")...)
	raw, err := fileio.ReadFile(ctx, out+"/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		ZeroShot *struct {
			Tasks []struct {
				Task  string `json:"task"`
				Items int    `json:"items"`
			} `json:"tasks"`
		} `json:"zero_shot"`
		Linears []json.RawMessage `json:"linears"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ZeroShot == nil || len(rep.ZeroShot.Tasks) != 1 || rep.ZeroShot.Tasks[0].Task != "arc_easy" || rep.ZeroShot.Tasks[0].Items != 3 || len(rep.Linears) == 0 {
		t.Errorf("gs:// report.json lacks the zero-shot section or the linears:\n%s", raw)
	}
}

// TestEvalAdapterGCS: eval of a gs:// model directory that holds a PEFT
// adapter (prune --separate-lora) merges the adapter, as it does for a
// local directory: the perplexity equals that of a local copy.
func TestEvalAdapterGCS(t *testing.T) {
	f := newFixture(t)
	gcstest.Start(t, "bkt")
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "sep")
	mustOptima(t, f.pruneArgs(local, "--bits", "4", "--lora-rank", "0.5", "--separate-lora")...)
	remote := "gs://bkt/models/sep"
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
		"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} {
		if err := fileio.CopyFile(ctx, filepath.Join(local, name), remote+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	ppl := func(model string) (float64, string) {
		stdout, stderr := mustOptima(t, "eval", "--model", model, "--seqlen", "32", "--data-dir", f.data, "--json", "--no-progress")
		var r evalResult
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r.Perplexity, stderr
	}
	want, _ := ppl(local)
	got, stderr := ppl(remote)
	if got != want {
		t.Errorf("perplexity of %s = %v, of its local copy %v (stderr %q)", remote, got, want, stderr)
	}
	if !strings.Contains(stderr, "merging the adapter") {
		t.Errorf("eval of %s did not merge its adapter; stderr %q", remote, stderr)
	}
}
