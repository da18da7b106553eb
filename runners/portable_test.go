package runners_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/pipeline"
	"github.com/optima-llm/optima/runners"
)

// FlinkJarEnv names the Beam Flink job server jar
// (org.apache.beam:beam-runners-flink-<flink>-job-server, fetched by
// scripts/get-flink-jobserver.sh, which scripts/test.sh runs).
const FlinkJarEnv = "OPTIMA_FLINK_JOB_SERVER_JAR"

// jobServer is a Beam job server process started by a test.
type jobServer struct {
	name     string
	endpoint string
	cmd      *exec.Cmd
	out      *syncBuffer
	once     sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kill stops the server with SIGKILL (no graceful shutdown) and reaps it.
func (j *jobServer) kill() {
	j.once.Do(func() {
		j.cmd.Process.Kill()
		j.cmd.Wait()
	})
}

// start runs cmd, waits until it accepts connections on port, and kills it
// when the test ends.
func start(t *testing.T, name string, cmd *exec.Cmd, port int, timeout time.Duration) *jobServer {
	t.Helper()
	j := &jobServer{name: name, endpoint: "localhost:" + strconv.Itoa(port), cmd: cmd, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = j.out, j.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s job server: %v", name, err)
	}
	t.Cleanup(j.kill)
	exited := make(chan error, 1)
	go func() { _, err := cmd.Process.Wait(); exited <- err }()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return j
		}
		select {
		case err := <-exited:
			t.Fatalf("%s job server exited before listening (%v):\n%s", name, err, j.out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s job server not listening on %d after %v:\n%s", name, port, timeout, j.out.String())
		}
	}
}

// startPrism starts Prism's job server (this test binary, see TestMain) as a
// separate process: a Beam portable job server speaking the same Job API as
// Flink's, always available.
func startPrism(t *testing.T) *jobServer {
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", jobServerPortEnv, port))
	return start(t, "prism", cmd, port, 30*time.Second)
}

// startFlink starts the Beam Flink job server jar with an embedded Flink
// cluster on a free port.
func startFlink(t *testing.T) *jobServer {
	jar := os.Getenv(FlinkJarEnv)
	if jar == "" {
		t.Skipf("%s is not set (scripts/test.sh sets it after scripts/get-flink-jobserver.sh fetched the jar)", FlinkJarEnv)
	}
	if _, err := os.Stat(jar); err != nil {
		t.Fatalf("%s=%s: %v", FlinkJarEnv, jar, err)
	}
	port := freePort(t)
	cmd := exec.Command("java", "-Xmx1g", "-jar", jar, "--job-port", strconv.Itoa(port),
		"--artifact-port", "0", "--expansion-port", "0", "--flink-master", "[local]")
	return start(t, "flink", cmd, port, 120*time.Second)
}

func portable(j *jobServer) runners.Config {
	return runners.Config{Runner: runners.Flink, JobEndpoint: j.endpoint, EnvironmentType: "LOOPBACK", Parallelism: 2}
}

// TestFlink prunes a tiny model on a real Flink (embedded cluster of the
// Beam Flink job server, Go workers in LOOPBACK mode) and checks the weights
// against the local runner's, then kills the job server mid-run and resumes.
func TestFlink(t *testing.T) {
	if os.Getenv(FlinkJarEnv) == "" {
		t.Skipf("%s is not set (scripts/test.sh sets it after scripts/get-flink-jobserver.sh fetched the jar)", FlinkJarEnv)
	}
	testPortable(t, startFlink)
}

// TestPortableJobServer runs the same checks against Prism's job server in
// a separate process: the submission path of --runner flink (Beam's portable
// runner, job endpoint, LOOPBACK workers), with a server that is always
// available to kill.
func TestPortableJobServer(t *testing.T) {
	testPortable(t, startPrism)
}

func testPortable(t *testing.T, startServer func(*testing.T) *jobServer) {
	dir := t.TempDir()
	const layers = 6
	modelDir, corpus := fixture(t, dir, layers)
	cfg := config(modelDir, corpus, "", "")
	want := localReference(t, cfg, filepath.Join(dir, "local-out"))

	js := startServer(t)
	t.Run("equals-local", func(t *testing.T) {
		c := cfg
		c.Out, c.WorkRoot = filepath.Join(dir, "portable-out"), filepath.Join(dir, "portable-work")
		if _, err := prunePipeline(t, c, portable(js)); err != nil {
			t.Fatalf("%s job server: %v\n%s", js.name, err, js.out.String())
		}
		sameAsLocal(t, js.name, want, weights(t, c.Out))
	})
	t.Run("kill-and-resume", func(t *testing.T) {
		c := cfg
		c.Out, c.WorkRoot = filepath.Join(dir, "killed-out"), filepath.Join(dir, "killed-work")
		victim := startServer(t)
		plan, err := pipeline.Prepare(&c)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := prunePipeline(t, c, portable(victim))
			errc <- err
		}()
		// Kill the job server once block 0 is done, with blocks to go.
		ctx := context.Background()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if ok, _ := fileio.Exists(ctx, plan.Work.DonePath(0)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("block 0 not done after 2 minutes:\n%s", victim.out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		victim.kill()
		select {
		case err = <-errc:
		case <-time.After(2 * time.Minute):
			t.Fatal("the run did not end within 2 minutes of the job server's death")
		}
		if err == nil {
			t.Fatal("the run succeeded although its job server was killed")
		}
		t.Logf("run with killed job server: %v", err)
		if !strings.Contains(err.Error(), victim.endpoint) || !strings.Contains(err.Error(), "went away") {
			t.Errorf("error %q does not say that the job server at %s went away", err, victim.endpoint)
		}
		if _, serr := os.Stat(c.Out); !os.IsNotExist(serr) {
			t.Errorf("output %s exists after the failed run (%v)", c.Out, serr)
		}
		done, err := plan.Work.Done(layers)
		if err != nil {
			t.Fatal(err)
		}
		if len(done) == 0 || len(done) == layers {
			t.Fatalf("%d of %d blocks done after the kill; want some but not all", len(done), layers)
		}

		again := js // the job server of the first subtest, still up
		plan, err = prunePipeline(t, c, portable(again))
		if err != nil {
			t.Fatalf("resumed run: %v\n%s", err, again.out.String())
		}
		if len(plan.Done) == 0 {
			t.Error("the rerun did not resume from the finished blocks")
		}
		t.Logf("resumed after %d finished blocks", len(plan.Done))
		sameAsLocal(t, again.name+" (resumed)", want, weights(t, c.Out))
	})
}
