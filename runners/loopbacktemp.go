package runners

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// loopbackWorkerPrefix begins the name of the file Beam's Go SDK creates in
// os.TempDir() for every loopback run (runners/universal/runnerlib/execute.go,
// v2.77.0: os.CreateTemp(os.TempDir(), "beamloopbackworker-*"), whose
// descriptor and file it never closes or removes; its TODO names
// apache/beam#27569). The file is empty: in loopback mode no worker binary
// is staged.
const loopbackWorkerPrefix = "beamloopbackworker-"

// privateTemp is the directory $TMPDIR points at while runs are inside
// withPrivateTemp, shared by overlapping runs of this process.
var privateTemp struct {
	mu    sync.Mutex
	users int
	dir   string
	// saved and had are $TMPDIR before the first user entered.
	saved string
	had   bool
}

// withPrivateTemp runs fn with $TMPDIR set to a new directory inside
// os.TempDir(), so that the beamloopbackworker-* file that Beam leaves
// behind for a loopback run lands where only this process writes. After
// the last of any overlapping runs it restores $TMPDIR, removes the
// beamloopbackworker-* files from that directory (this process's by
// construction; it never touches files other processes made in the real
// temporary directory), and removes the directory when it is then empty.
// Temporary files that other code of this process made there during the
// run and left behind stay, in the directory optima-beam-*.
//
// The Go runtime closes the leaked descriptor when the garbage collector
// finalizes Beam's unreachable *os.File; removing the name is what keeps
// the files from piling up. An error creating the directory is returned
// naming it (Beam itself would panic on its failed CreateTemp).
func withPrivateTemp(fn func() error) error {
	if err := enterPrivateTemp(); err != nil {
		return err
	}
	defer leavePrivateTemp()
	return fn()
}

func enterPrivateTemp() error {
	p := &privateTemp
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users == 0 {
		dir, err := os.MkdirTemp("", "optima-beam-*")
		if err != nil {
			return fmt.Errorf("runners: temporary directory for Beam's loopback worker file: %w", err)
		}
		p.saved, p.had = os.LookupEnv("TMPDIR")
		if err := os.Setenv("TMPDIR", dir); err != nil {
			os.Remove(dir)
			return fmt.Errorf("runners: set TMPDIR=%s: %w", dir, err)
		}
		p.dir = dir
	}
	p.users++
	return nil
}

func leavePrivateTemp() {
	p := &privateTemp
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users--
	if p.users > 0 {
		return
	}
	if p.had {
		os.Setenv("TMPDIR", p.saved)
	} else {
		os.Unsetenv("TMPDIR")
	}
	removeLoopbackFiles(p.dir)
	os.Remove(p.dir) // fails, and keeps it, when other files are left
	p.dir = ""
}

// removeLoopbackFiles removes the regular files named beamloopbackworker-*
// directly in dir.
func removeLoopbackFiles(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), loopbackWorkerPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
