package runners

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	dataflow := func(mod func(*Config)) Config {
		c := Config{Runner: Dataflow, Project: "p", Region: "us-central1", StagingLocation: "gs://b/staging"}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	flink := func(mod func(*Config)) Config {
		c := Config{Runner: Flink, JobEndpoint: "localhost:8099"}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means valid; else a substring naming the flag
	}{
		{"default", Config{}, ""},
		{"prism", Config{Runner: Prism}, ""},
		{"unknown", Config{Runner: "spark2"}, "--runner spark2: unknown runner"},
		{"local with flink flag", Config{Parallelism: 2}, "--parallelism: only applies to --runner flink"},
		{"local with dataflow flag", Config{Project: "p"}, "--project: only applies to --runner dataflow"},
		{"flink", flink(nil), ""},
		{"flink full", flink(func(c *Config) {
			c.Parallelism, c.EnvironmentType, c.EnvironmentConfig = 4, "external", "localhost:50000"
		}), ""},
		{"flink no endpoint", flink(func(c *Config) { c.JobEndpoint = "" }), "--job-endpoint: required"},
		{"flink bad endpoint", flink(func(c *Config) { c.JobEndpoint = "localhost" }), "--job-endpoint localhost: want host:port"},
		{"flink bad port", flink(func(c *Config) { c.JobEndpoint = "localhost:99999" }), "port must be"},
		{"flink negative parallelism", flink(func(c *Config) { c.Parallelism = -1 }), "--parallelism -1"},
		{"flink env", flink(func(c *Config) { c.EnvironmentType = "kubernetes" }), "--environment-type kubernetes: unknown"},
		{"flink external needs config", flink(func(c *Config) { c.EnvironmentType = "EXTERNAL" }), "--environment-config: required"},
		{"flink loopback config", flink(func(c *Config) { c.EnvironmentConfig = "x" }), "does not apply to --environment-type LOOPBACK"},
		{"flink with dataflow flag", flink(func(c *Config) { c.Region = "r" }), "--region: only applies to --runner dataflow"},
		{"dataflow", dataflow(nil), ""},
		{"dataflow gpu", dataflow(func(c *Config) {
			c.WorkerMachineType, c.WorkerAccelerator, c.NumWorkers, c.MaxNumWorkers = "g2-standard-8", "type:nvidia-l4;count:1;install-nvidia-driver", 2, 4
		}), ""},
		{"dataflow no project", dataflow(func(c *Config) { c.Project = "" }), "--project: required"},
		{"dataflow no region", dataflow(func(c *Config) { c.Region = "" }), "--region: required"},
		{"dataflow local staging", dataflow(func(c *Config) { c.StagingLocation = "/tmp/x" }), "--staging-location /tmp/x"},
		{"dataflow local temp", dataflow(func(c *Config) { c.TempLocation = "/tmp/x" }), "--temp-location /tmp/x"},
		{"dataflow staging without bucket", dataflow(func(c *Config) { c.StagingLocation = "gs:///staging" }), "--staging-location gs:///staging: no bucket"},
		{"dataflow temp without bucket", dataflow(func(c *Config) { c.TempLocation = "gs:///tmp" }), "--temp-location gs:///tmp: no bucket"},
		{"dataflow staging bad element", dataflow(func(c *Config) { c.StagingLocation = "gs://b//staging" }), "--staging-location gs://b//staging: empty path element"},
		{"dataflow staging bucket root", dataflow(func(c *Config) { c.StagingLocation = "gs://b" }), ""},
		{"dataflow workers", dataflow(func(c *Config) { c.NumWorkers, c.MaxNumWorkers = 5, 2 }), "exceeds --max-num-workers 2"},
		{"dataflow accelerator", dataflow(func(c *Config) { c.WorkerAccelerator = "nvidia-l4" }), "--worker-accelerator nvidia-l4"},
		{"dataflow with flink flag", dataflow(func(c *Config) { c.JobEndpoint = "x:1" }), "--job-endpoint: only applies to --runner flink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckSharedPaths(t *testing.T) {
	paths := map[string]string{"--model": "/m", "--out": "gs://b/o", "--work-dir": ""}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Runner: Flink, JobEndpoint: "h:1"}, ""}, // LOOPBACK: workers in this process
		{Config{Runner: Flink, JobEndpoint: "h:1", EnvironmentType: "DOCKER"}, "--model /m: --runner flink workers run on other machines"},
		{Config{Runner: Dataflow}, "--model /m: --runner dataflow"},
	} {
		err := tc.cfg.CheckSharedPaths(paths)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: CheckSharedPaths = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestRunRejectsBeforeRunning(t *testing.T) {
	for runner, want := range map[string]string{
		"flink":    "--job-endpoint: required",
		"dataflow": "--project: required",
		"spark2":   "--runner spark2: unknown",
	} {
		p, _ := beam.NewPipelineWithRoot()
		_, err := Run(context.Background(), runner, p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run(%q): %v, want an error containing %q", runner, err, want)
		}
	}
}

func TestBeamFlagsRestored(t *testing.T) {
	before := flag.Lookup("endpoint").Value.String()
	c := Config{Runner: Flink, JobEndpoint: "localhost:1234", Parallelism: 3}
	var during []string
	err := withBeamFlags(c.beamFlags(), func() error {
		for _, f := range []string{"endpoint", "environment_type", "parallelism"} {
			during = append(during, flag.Lookup(f).Value.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"localhost:1234", "LOOPBACK", "3"}, during); diff != "" {
		t.Errorf("Beam flags during the run (-want +got):\n%s", diff)
	}
	if after := flag.Lookup("endpoint").Value.String(); after != before {
		t.Errorf("--endpoint after the run = %q, want %q restored", after, before)
	}
}

// TestDataflowDryRun translates a small pipeline into the Dataflow job
// without a cloud account and checks the options a GPU job needs reach it.
func TestDataflowDryRun(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	beam.ParDo(s, strings.ToUpper, beam.Create(s, "a", "b"))
	var out bytes.Buffer
	c := Config{Runner: Dataflow, Project: "my-proj", Region: "us-central1", StagingLocation: "gs://bkt/staging",
		WorkerMachineType: "g2-standard-8", NumWorkers: 2, MaxNumWorkers: 8, JobName: "optima-dry",
		WorkerAccelerator: "type:nvidia-l4;count:1;install-nvidia-driver", SDKContainerImage: "us-docker.pkg.dev/my-proj/optima/worker-cuda:1",
		DryRun: true, Stdout: &out}
	res, err := Execute(context.Background(), c, p)
	if err != nil || res != nil {
		t.Fatalf("Execute(dry run) = %v, %v", res, err)
	}
	var got struct {
		Job struct {
			ProjectID   string `json:"projectId"`
			Name        string `json:"name"`
			Type        string `json:"type"`
			Environment struct {
				ServiceOptions    []string `json:"serviceOptions"`
				TempStoragePrefix string   `json:"tempStoragePrefix"`
				WorkerPools       []struct {
					MachineType                 string `json:"machineType"`
					NumWorkers                  int64  `json:"numWorkers"`
					WorkerHarnessContainerImage string `json:"workerHarnessContainerImage"`
					Packages                    []struct {
						Location string `json:"location"`
					} `json:"packages"`
					AutoscalingSettings struct {
						MaxNumWorkers int64 `json:"maxNumWorkers"`
					} `json:"autoscalingSettings"`
				} `json:"workerPools"`
			} `json:"environment"`
		} `json:"job"`
		Transforms int `json:"pipeline_transforms"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("dry run output is not JSON: %v\n%s", err, out.String())
	}
	j := got.Job
	if j.ProjectID != "my-proj" || j.Name != "optima-dry" || j.Type != "JOB_TYPE_BATCH" || len(j.Environment.WorkerPools) != 1 || got.Transforms == 0 {
		t.Fatalf("dry-run job: %+v", got)
	}
	wp := j.Environment.WorkerPools[0]
	for _, c := range []struct{ what, got, want string }{
		{"service options", strings.Join(j.Environment.ServiceOptions, ","), "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"},
		{"temp", j.Environment.TempStoragePrefix, "gs://bkt/staging/tmp"},
		{"machine", wp.MachineType, "g2-standard-8"},
		{"image", wp.WorkerHarnessContainerImage, "us-docker.pkg.dev/my-proj/optima/worker-cuda:1"},
		{"worker package", wp.Packages[0].Location, "gs://bkt/staging/optima-dry/worker"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if wp.NumWorkers != 2 || wp.AutoscalingSettings.MaxNumWorkers != 8 {
		t.Errorf("workers = %d (max %d), want 2 (max 8)", wp.NumWorkers, wp.AutoscalingSettings.MaxNumWorkers)
	}
}

// TestCheckReachable: a Flink job endpoint where nothing listens is an
// error naming the flag and the endpoint, at once (Beam itself waits two
// minutes to dial it); a listening one, and the other runners, pass.
func TestCheckReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	live := l.Addr().String()
	defer l.Close()
	c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := c.Addr().String()
	c.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: reachable
	}{
		{"local", Config{}, nil},
		{"flink live", Config{Runner: Flink, JobEndpoint: live}, nil},
		{"flink closed", Config{Runner: Flink, JobEndpoint: closed}, []string{"--job-endpoint", closed, "unreachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckReachable(context.Background())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckReachable: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckReachable: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
