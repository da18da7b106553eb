package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeGo logs "ARGS CGO_ENABLED=VALUE" to $FAKE_LOG, prints a version for
// go version and $FAKE_GOCACHE for go env GOCACHE.
const fakeGo = `#!/usr/bin/env bash
echo "$* CGO_ENABLED=${CGO_ENABLED-unset}" >> "$FAKE_LOG"
case $1 in
  version) echo "go version go0.0 fake" ;;
  env) echo "$FAKE_GOCACHE" ;;
esac
`

// fakeDf prints df -P's header and one line with $FAKE_FREE KiB available,
// or fails as df does for a missing path when $FAKE_FREE is "fail".
const fakeDf = `#!/usr/bin/env bash
if [ "$FAKE_FREE" = fail ]; then echo "df: ${!#}: No such file or directory" >&2; exit 1; fi
echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
echo "/dev/x 100000000 1 $FAKE_FREE 1% /"
`

// TestCIScripts runs .ci/run and test.sh with fakeGo, fakeDf and an empty
// python3 first on $PATH, and every file test.sh would fetch given: which
// go commands they run and with which CGO_ENABLED, what the disk guard of
// .ci/run says and does, and that it creates a build cache that does not
// exist yet.
func TestCIScripts(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		script string
		args   []string
		env    []string
		// calls are the go commands run, "ARGS CGO_ENABLED=V".
		calls []string
		// output must be in the script's output; notOutput must not.
		output, notOutput []string
	}{
		{
			name:   "plenty of disk",
			script: ".ci/run",
			env:    []string{"FAKE_FREE=8000000"},
			calls: []string{"version CGO_ENABLED=unset", "env GOCACHE CGO_ENABLED=unset", "mod download CGO_ENABLED=unset",
				"vet ./... CGO_ENABLED=0", "test -timeout 60m ./... CGO_ENABLED=0"},
			output: []string{"CI: 7812 MiB free on the disk of"},
		},
		{
			name:   "under 4 GiB empties the build cache",
			script: ".ci/run",
			env:    []string{"FAKE_FREE=1000000"},
			calls: []string{"version CGO_ENABLED=unset", "env GOCACHE CGO_ENABLED=unset", "clean -cache CGO_ENABLED=unset", "mod download CGO_ENABLED=unset",
				"vet ./... CGO_ENABLED=0", "test -timeout 60m ./... CGO_ENABLED=0"},
			output: []string{"under 4 GiB; emptying the Go build cache"},
		},
		{
			name:   "a disk df cannot measure is said, and the run goes on",
			script: ".ci/run",
			env:    []string{"FAKE_FREE=fail"},
			calls: []string{"version CGO_ENABLED=unset", "env GOCACHE CGO_ENABLED=unset", "mod download CGO_ENABLED=unset",
				"vet ./... CGO_ENABLED=0", "test -timeout 60m ./... CGO_ENABLED=0"},
			output:    []string{"CI: cannot tell the free disk of"},
			notOutput: []string{"integer expression expected", "syntax error"},
		},
		{
			name:   "the caller's CGO_ENABLED is kept",
			script: "scripts/test.sh",
			env:    []string{"CGO_ENABLED=1"},
			calls:  []string{"vet ./... CGO_ENABLED=1", "test -timeout 60m ./... CGO_ENABLED=1"},
		},
		{
			// The race detector needs cgo: go test -race with
			// CGO_ENABLED=0 fails at once.
			name:   "-race builds with cgo",
			script: "scripts/test.sh",
			args:   []string{"-race"},
			calls:  []string{"vet ./... CGO_ENABLED=unset", "test -timeout 60m ./... -race CGO_ENABLED=unset"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string]string{"go": fakeGo, "df": fakeDf, "python3": "#!/bin/sh\n"} {
				if err := os.WriteFile(filepath.Join(bin, name), []byte(s), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			log := filepath.Join(dir, "log")
			// A build cache that does not exist yet.
			cache := filepath.Join(dir, "cache", "go-build")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "CGO_ENABLED=") && !strings.HasPrefix(kv, "PATH=") {
					env = append(env, kv)
				}
			}
			env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "FAKE_LOG="+log, "FAKE_GOCACHE="+cache,
				"FAKE_FREE=8000000", "TMPDIR="+dir,
				// Everything test.sh would fetch, given.
				"OPTIMA_SMOLLM2_GGUF=model.gguf", "OPTIMA_LLAMA3_TOKENIZER=l.json", "OPTIMA_GEMMA3_TOKENIZER=g.json",
				"OPTIMA_DATA="+dir, "OPTIMA_FLINK_JOB_SERVER_JAR=flink.jar")
			cmd := exec.Command("bash", append([]string{filepath.Join(root, tc.script)}, tc.args...)...)
			cmd.Env = append(env, tc.env...)
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.script, err, b)
			}
			raw, _ := os.ReadFile(log)
			calls := strings.Split(strings.TrimSpace(string(raw)), "\n")
			if diff := cmp.Diff(tc.calls, calls); diff != "" {
				t.Errorf("go commands (-want +got):\n%s\noutput:\n%s", diff, b)
			}
			for _, w := range tc.output {
				if !strings.Contains(string(b), w) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			for _, w := range tc.notOutput {
				if strings.Contains(string(b), w) {
					t.Errorf("output has %q:\n%s", w, b)
				}
			}
			if tc.script == ".ci/run" {
				if fi, err := os.Stat(cache); err != nil || !fi.IsDir() {
					t.Errorf("the build cache %s was not created: %v", cache, err)
				}
			}
		})
	}
}
