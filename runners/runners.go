// Package runners is the one place that turns optima's --runner choice and
// its options into a Beam run:
//
//   - local (default; alias prism): Beam's Prism runner in process, Go
//     workers in loopback mode.
//   - flink: a Beam Flink job server (the Java program
//     org.apache.beam:beam-runners-flink-<flink>-job-server, started with
//     `java -jar JAR --job-port 8099`) at --job-endpoint, through Beam's
//     portable (universal) runner, with --parallelism and
//     --environment-type (LOOPBACK runs the Go workers inside the launching
//     process, no Docker needed; DOCKER, PROCESS and EXTERNAL as in Beam).
//     Any Beam portable job server works the same way.
//   - dataflow: Google Cloud Dataflow with --project, --region,
//     --staging-location (gs://), --temp-location, --worker-machine-type,
//     --num-workers, --max-num-workers and --worker-accelerator for GPU
//     workers (the solve stage's CUDA backend); --dry-run prints the job it
//     would submit without any cloud account.
//
// Beam's Go SDK keeps runner options in package-level flags; Execute sets
// them for one run and restores them afterwards, so runs with different
// configurations can follow each other in one process.
package runners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/runtime/graphx"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/util/protox"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow/dataflowlib"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"
	"github.com/spf13/pflag"
)

// Runner names accepted by --runner.
const (
	Local    = "local"
	Prism    = "prism"
	Flink    = "flink"
	Dataflow = "dataflow"
)

// Names lists the accepted --runner values.
func Names() []string { return []string{Local, Prism, Flink, Dataflow} }

// Environment types of the portable runners' SDK workers (--environment-type).
var environmentTypes = []string{"LOOPBACK", "DOCKER", "PROCESS", "EXTERNAL"}

// Config is a runner and its options, as given by the flags of AddFlags.
type Config struct {
	// Runner is one of Names(); empty means Local.
	Runner string `json:"runner"`

	// JobEndpoint is the job server's host:port (flink).
	JobEndpoint string `json:"job_endpoint,omitempty"`
	// Parallelism is Flink's default parallelism (≤ 0: the job server's).
	Parallelism int `json:"parallelism,omitempty"`
	// EnvironmentType is how the SDK workers run: LOOPBACK (default for
	// flink), DOCKER, PROCESS or EXTERNAL.
	EnvironmentType string `json:"environment_type,omitempty"`
	// EnvironmentConfig is the environment's configuration: a container
	// image (DOCKER), a worker address (EXTERNAL) or a JSON command (PROCESS).
	EnvironmentConfig string `json:"environment_config,omitempty"`

	// Project and Region are the Google Cloud project and Dataflow region.
	Project string `json:"project,omitempty"`
	Region  string `json:"region,omitempty"`
	// StagingLocation (gs://) receives the worker binary and the pipeline.
	StagingLocation string `json:"staging_location,omitempty"`
	// TempLocation (gs://) holds Dataflow's temporary files (default
	// StagingLocation/tmp).
	TempLocation string `json:"temp_location,omitempty"`
	// WorkerMachineType is the Compute Engine machine type of the workers
	// (e.g. g2-standard-8 for one NVIDIA L4).
	WorkerMachineType string `json:"worker_machine_type,omitempty"`
	// NumWorkers and MaxNumWorkers bound the worker pool (0: Dataflow's).
	NumWorkers    int `json:"num_workers,omitempty"`
	MaxNumWorkers int `json:"max_num_workers,omitempty"`
	// WorkerAccelerator attaches GPUs to the workers, in Dataflow's syntax
	// "type:nvidia-l4;count:1;install-nvidia-driver". The Go SDK has no
	// per-transform resource hints, so every worker gets it; the solve
	// stage is the one that uses it.
	WorkerAccelerator string `json:"worker_accelerator,omitempty"`
	// SDKContainerImage is the worker container (a CUDA-enabled image for
	// GPU workers; default: Beam's Go SDK image).
	SDKContainerImage string `json:"sdk_container_image,omitempty"`
	// DryRun prints the Dataflow job instead of submitting it.
	DryRun bool `json:"dry_run,omitempty"`

	// JobName names the job on Flink and Dataflow (default: Beam's).
	JobName string `json:"job_name,omitempty"`
	// Stdout receives the dry run's job (default os.Stdout).
	Stdout io.Writer `json:"-"`
}

// AddFlags registers the runner flags on fs, writing into c.
func AddFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.Runner, "runner", Local, fmt.Sprintf("Beam runner: %v", Names()))
	fs.StringVar(&c.JobEndpoint, "job-endpoint", "", "flink: job server host:port (e.g. localhost:8099)")
	fs.IntVar(&c.Parallelism, "parallelism", 0, "flink: default parallelism (0: the job server's)")
	fs.StringVar(&c.EnvironmentType, "environment-type", "", "flink: SDK worker environment: LOOPBACK (default), DOCKER, PROCESS, EXTERNAL")
	fs.StringVar(&c.EnvironmentConfig, "environment-config", "", "flink: environment configuration (image, address or JSON command)")
	fs.StringVar(&c.Project, "project", "", "dataflow: Google Cloud project")
	fs.StringVar(&c.Region, "region", "", "dataflow: region, e.g. us-central1")
	fs.StringVar(&c.StagingLocation, "staging-location", "", "dataflow: gs:// location for the worker binary and pipeline")
	fs.StringVar(&c.TempLocation, "temp-location", "", "dataflow: gs:// location for temporary files (default STAGING/tmp)")
	fs.StringVar(&c.WorkerMachineType, "worker-machine-type", "", "dataflow: worker machine type, e.g. g2-standard-8")
	fs.IntVar(&c.NumWorkers, "num-workers", 0, "dataflow: initial number of workers (0: Dataflow's default)")
	fs.IntVar(&c.MaxNumWorkers, "max-num-workers", 0, "dataflow: maximum number of workers (0: Dataflow's default)")
	fs.StringVar(&c.WorkerAccelerator, "worker-accelerator", "", `dataflow: GPUs per worker, e.g. "type:nvidia-l4;count:1;install-nvidia-driver"`)
	fs.StringVar(&c.SDKContainerImage, "sdk-container-image", "", "dataflow: worker container image (CUDA-enabled for GPU workers)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "dataflow: print the job that would be submitted and exit")
	fs.StringVar(&c.JobName, "job-name", "", "flink, dataflow: job name")
}

// name is the canonical runner name.
func (c *Config) name() string {
	switch c.Runner {
	case "", Local, Prism:
		return Local
	}
	return c.Runner
}

// Remote reports whether the runner's workers may run on other machines,
// so that every file they touch must be on shared storage.
func (c *Config) Remote() bool {
	switch c.name() {
	case Dataflow:
		return true
	case Flink:
		return !strings.EqualFold(c.envType(), "LOOPBACK")
	}
	return false
}

func (c *Config) envType() string {
	if c.EnvironmentType == "" {
		return "LOOPBACK"
	}
	return strings.ToUpper(c.EnvironmentType)
}

var acceleratorRE = regexp.MustCompile(`^type:[a-z0-9-]+;count:[1-9][0-9]*(;install-nvidia-driver(:[a-z0-9.=_-]+)?)?$`)

// flagError names the flag at fault.
type flagError struct{ flag, value, why string }

func (e *flagError) Error() string {
	if e.value == "" {
		return e.flag + ": " + e.why
	}
	return e.flag + " " + e.value + ": " + e.why
}

// Validate checks the runner and the options it needs, naming the flag at
// fault. Options of another runner are rejected rather than ignored.
func (c *Config) Validate() error {
	if !slices.Contains(Names(), c.Runner) && c.Runner != "" {
		return &flagError{"--runner", c.Runner, fmt.Sprintf("unknown runner (known: %v)", Names())}
	}
	flinkOnly := map[string]bool{"--job-endpoint": c.JobEndpoint != "", "--parallelism": c.Parallelism != 0,
		"--environment-type": c.EnvironmentType != "", "--environment-config": c.EnvironmentConfig != ""}
	dataflowOnly := map[string]bool{"--project": c.Project != "", "--region": c.Region != "",
		"--staging-location": c.StagingLocation != "", "--temp-location": c.TempLocation != "",
		"--worker-machine-type": c.WorkerMachineType != "", "--num-workers": c.NumWorkers != 0,
		"--max-num-workers": c.MaxNumWorkers != 0, "--worker-accelerator": c.WorkerAccelerator != "",
		"--sdk-container-image": c.SDKContainerImage != "", "--dry-run": c.DryRun}
	misplaced := func(set map[string]bool, owner string) error {
		var names []string
		for f, on := range set {
			if on {
				names = append(names, f)
			}
		}
		if len(names) == 0 {
			return nil
		}
		slices.Sort(names)
		return &flagError{names[0], "", fmt.Sprintf("only applies to --runner %s (this run uses --runner %s)", owner, c.name())}
	}
	switch c.name() {
	case Local:
		if err := misplaced(flinkOnly, Flink); err != nil {
			return err
		}
		if err := misplaced(dataflowOnly, Dataflow); err != nil {
			return err
		}
		if c.JobName != "" {
			return &flagError{"--job-name", c.JobName, "only applies to --runner flink or dataflow"}
		}
	case Flink:
		if err := misplaced(dataflowOnly, Dataflow); err != nil {
			return err
		}
		if c.JobEndpoint == "" {
			return &flagError{"--job-endpoint", "", "required with --runner flink (the Flink job server's host:port, e.g. localhost:8099)"}
		}
		host, port, err := net.SplitHostPort(c.JobEndpoint)
		if err != nil || host == "" {
			return &flagError{"--job-endpoint", c.JobEndpoint, "want host:port"}
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return &flagError{"--job-endpoint", c.JobEndpoint, "port must be in 1..65535"}
		}
		if c.Parallelism < 0 {
			return &flagError{"--parallelism", strconv.Itoa(c.Parallelism), "must not be negative"}
		}
		if !slices.Contains(environmentTypes, c.envType()) {
			return &flagError{"--environment-type", c.EnvironmentType, fmt.Sprintf("unknown (known: %v)", environmentTypes)}
		}
		if c.envType() == "EXTERNAL" && c.EnvironmentConfig == "" {
			return &flagError{"--environment-config", "", "required with --environment-type EXTERNAL (the worker pool's host:port)"}
		}
		if c.envType() == "LOOPBACK" && c.EnvironmentConfig != "" {
			return &flagError{"--environment-config", c.EnvironmentConfig, "does not apply to --environment-type LOOPBACK"}
		}
	case Dataflow:
		if err := misplaced(flinkOnly, Flink); err != nil {
			return err
		}
		if c.Project == "" {
			return &flagError{"--project", "", "required with --runner dataflow"}
		}
		if c.Region == "" {
			return &flagError{"--region", "", "required with --runner dataflow (e.g. us-central1)"}
		}
		if !strings.HasPrefix(c.StagingLocation, "gs://") || len(c.StagingLocation) <= len("gs://") {
			return &flagError{"--staging-location", c.StagingLocation, "required with --runner dataflow, a gs://bucket/path"}
		}
		if err := CheckGCSURL("--staging-location", c.StagingLocation, NeedBucket); err != nil {
			return err
		}
		if c.TempLocation != "" && !strings.HasPrefix(c.TempLocation, "gs://") {
			return &flagError{"--temp-location", c.TempLocation, "must be a gs:// location"}
		}
		if err := CheckGCSURL("--temp-location", c.TempLocation, NeedBucket); err != nil {
			return err
		}
		if c.NumWorkers < 0 || c.MaxNumWorkers < 0 {
			return &flagError{"--num-workers", fmt.Sprint(c.NumWorkers, "/", c.MaxNumWorkers), "worker counts must not be negative"}
		}
		if c.MaxNumWorkers > 0 && c.NumWorkers > c.MaxNumWorkers {
			return &flagError{"--num-workers", strconv.Itoa(c.NumWorkers), fmt.Sprintf("exceeds --max-num-workers %d", c.MaxNumWorkers)}
		}
		if c.WorkerAccelerator != "" && !acceleratorRE.MatchString(c.WorkerAccelerator) {
			return &flagError{"--worker-accelerator", c.WorkerAccelerator, `want "type:GPU;count:N[;install-nvidia-driver]", e.g. "type:nvidia-l4;count:1;install-nvidia-driver"`}
		}
	}
	return nil
}

// CheckSharedPaths checks that the files a run's workers read and write
// can be reached by them: with a remote runner (Dataflow, or Flink with
// workers outside the launching process) every path must be gs://; with the
// local runner or Flink in LOOPBACK mode on one machine, local paths work.
// paths maps a flag name (for the error) to its value; empty values are
// skipped.
func (c *Config) CheckSharedPaths(paths map[string]string) error {
	if !c.Remote() {
		return nil
	}
	names := make([]string, 0, len(paths))
	for f := range paths {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		if p := paths[f]; p != "" && !strings.HasPrefix(p, "gs://") {
			return &flagError{f, p, fmt.Sprintf("--runner %s workers run on other machines: use a gs:// path", c.name())}
		}
	}
	return nil
}

// beamFlags are the Beam flag values of the run.
func (c *Config) beamFlags() map[string]string {
	f := map[string]string{}
	if c.JobName != "" {
		f["job_name"] = c.JobName
	}
	switch c.name() {
	case Flink:
		f["endpoint"] = c.JobEndpoint
		f["environment_type"] = c.envType()
		f["environment_config"] = c.EnvironmentConfig
		if c.Parallelism > 0 {
			f["parallelism"] = strconv.Itoa(c.Parallelism)
		}
	case Dataflow:
		f["project"] = c.Project
		f["region"] = c.Region
		f["staging_location"] = c.StagingLocation
		f["temp_location"] = c.TempLocation
		f["worker_machine_type"] = c.WorkerMachineType
		f["num_workers"] = strconv.Itoa(c.NumWorkers)
		f["max_num_workers"] = strconv.Itoa(c.MaxNumWorkers)
		f["sdk_container_image"] = c.SDKContainerImage
		if c.WorkerAccelerator != "" {
			f["dataflow_service_options"] = "worker_accelerator=" + c.WorkerAccelerator
		}
	}
	return f
}

// withBeamFlags sets Beam's flags for the duration of fn and restores them.
func withBeamFlags(values map[string]string, fn func() error) error {
	old := map[string]string{}
	for name, v := range values {
		fl := flag.Lookup(name)
		if fl == nil {
			return fmt.Errorf("runners: Beam flag --%s is not registered", name)
		}
		old[name] = fl.Value.String()
		if err := flag.Set(name, v); err != nil {
			return fmt.Errorf("runners: set Beam flag --%s=%q: %w", name, v, err)
		}
	}
	defer func() {
		for name, v := range old {
			flag.Set(name, v)
		}
	}()
	return fn()
}

// Run executes p on the named runner with no further options (the local
// runner, or an error naming the flags a remote runner needs). It is
// Execute(ctx, Config{Runner: runner}, p).
func Run(ctx context.Context, runner string, p *beam.Pipeline) (beam.PipelineResult, error) {
	return Execute(ctx, Config{Runner: runner}, p)
}

// reachTimeout bounds CheckReachable's dial.
const reachTimeout = 10 * time.Second

// CheckReachable dials the Flink job server at c.JobEndpoint (TCP, at most
// reachTimeout) and returns an error naming --job-endpoint when nothing
// answers; Beam's own dial waits two minutes in silence. Other runners
// pass. It is a network call: callers make it after Validate and before
// starting work.
func (c Config) CheckReachable(ctx context.Context) error {
	if c.name() != Flink || c.JobEndpoint == "" {
		return nil
	}
	d := net.Dialer{Timeout: reachTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.JobEndpoint)
	if err != nil {
		return &flagError{"--job-endpoint", c.JobEndpoint, fmt.Sprintf("flink job server unreachable (is it running?): %v", err)}
	}
	return conn.Close()
}

// Execute validates c and runs p on its runner, waiting for the job to end.
// A failed or cancelled job, or a job server that goes away, is an error
// naming the runner (and the endpoint for flink). With DryRun, the Dataflow
// job is printed to c.Stdout and the result is nil. Loopback runs (local,
// flink with LOOPBACK) run with $TMPDIR pointing at a private directory
// inside it, which removes the empty beamloopbackworker-* file Beam leaves
// per run (withPrivateTemp).
func Execute(ctx context.Context, c Config, p *beam.Pipeline) (beam.PipelineResult, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var res beam.PipelineResult
	err := withBeamFlags(c.beamFlags(), func() error {
		var err error
		switch c.name() {
		case Local:
			err = withPrivateTemp(func() error {
				var err error
				res, err = prism.Execute(ctx, p)
				return err
			})
		case Flink:
			if err := c.CheckReachable(ctx); err != nil {
				return err
			}
			run := func() error {
				var err error
				res, err = universal.Execute(ctx, p)
				return err
			}
			if !c.Remote() { // LOOPBACK
				err = withPrivateTemp(run)
			} else {
				err = run()
			}
			if err != nil && strings.Contains(err.Error(), "code = Unavailable") {
				err = fmt.Errorf("flink job server at %s went away or is unreachable (stopped or crashed?): %w", c.JobEndpoint, err)
			} else if err != nil {
				err = fmt.Errorf("flink job at %s: %w", c.JobEndpoint, err)
			}
		case Dataflow:
			if c.DryRun {
				return c.dryRun(ctx, p)
			}
			res, err = dataflow.Execute(ctx, p)
			if err != nil {
				err = fmt.Errorf("dataflow job in %s/%s: %w", c.Project, c.Region, err)
			}
		}
		return err
	})
	return res, err
}

// DefaultContainerImage is Beam's Go SDK worker image for this SDK version.
func DefaultContainerImage(ctx context.Context) string {
	return jobopts.GetEnvironmentConfig(ctx)
}

// dryRun translates p into the Dataflow job that Execute would submit and
// prints it as JSON, without staging anything or calling any Google API.
func (c *Config) dryRun(ctx context.Context, p *beam.Pipeline) error {
	edges, _, err := p.Build()
	if err != nil {
		return err
	}
	image := c.SDKContainerImage
	if image == "" {
		image = DefaultContainerImage(ctx)
	}
	env, err := graphx.CreateEnvironment(ctx, "beam:env:docker:v1", func(context.Context) string { return image })
	if err != nil {
		return fmt.Errorf("dataflow dry run: %w", err)
	}
	model, err := graphx.Marshal(edges, &graphx.Options{Environment: env, PipelineResourceHints: jobopts.GetPipelineResourceHints()})
	if err != nil {
		return fmt.Errorf("dataflow dry run: %w", err)
	}
	raw := protox.MustEncode(model)
	sum := sha256.Sum256(raw)
	temp := c.TempLocation
	if temp == "" {
		temp = strings.TrimSuffix(c.StagingLocation, "/") + "/tmp"
	}
	name := c.JobName
	if name == "" {
		name = jobopts.GetJobName()
	}
	var svc []string
	if c.WorkerAccelerator != "" {
		svc = []string{"worker_accelerator=" + c.WorkerAccelerator}
	}
	beam.PipelineOptions.LoadOptionsFromFlags(nil)
	opts := &dataflowlib.JobOptions{
		Name:                   name,
		Experiments:            []string{"beam_fn_api", "use_runner_v2", "use_unified_worker", "use_portable_job_submission"},
		DataflowServiceOptions: svc,
		Options:                beam.PipelineOptions.Export(),
		Project:                c.Project,
		Region:                 c.Region,
		NumWorkers:             int64(c.NumWorkers),
		MaxNumWorkers:          int64(c.MaxNumWorkers),
		MachineType:            c.WorkerMachineType,
		TempLocation:           temp,
		ContainerImage:         image,
	}
	stage := strings.TrimSuffix(c.StagingLocation, "/") + "/" + name
	job, err := dataflowlib.Translate(ctx, model, opts, stage+"/worker", stage+"/model", hex.EncodeToString(sum[:]))
	if err != nil {
		return fmt.Errorf("dataflow dry run: %w", err)
	}
	out := c.Stdout
	if out == nil {
		out = os.Stdout
	}
	b, err := json.MarshalIndent(struct {
		Note           string `json:"note"`
		Job            any    `json:"job"`
		PipelineProtoB int    `json:"pipeline_proto_bytes"`
		Transforms     int    `json:"pipeline_transforms"`
	}{
		Note:           "dry run: nothing was staged or submitted; a real run builds a linux/amd64 worker binary, uploads it and the pipeline under --staging-location, then creates this job",
		Job:            job,
		PipelineProtoB: len(raw),
		Transforms:     len(model.GetComponents().GetTransforms()),
	}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
