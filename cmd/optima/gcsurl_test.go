package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadGCSURLs: a malformed gs:// value of any path flag is an error that
// names the flag and the value, before anything is read or created. Before
// the check, "gs:///x" reached internal/fileio.Clean and became the bucket
// "x", and "gs:/b/out" was taken as a local path (a directory "gs:" in the
// working directory).
func TestBadGCSURLs(t *testing.T) {
	f := newFixture(t)
	// Any request that slips through goes to a closed port, not the network.
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
	dataflow := []string{"--runner", "dataflow", "--project", "p", "--region", "r"}
	for _, tc := range []struct {
		name string
		args []string // "OUT" is replaced by a local output directory
		flag string   // the flag the error names
		url  string   // the value it names
		why  string
	}{
		{"model empty bucket", replace(f.pruneArgs("OUT"), f.model, "gs:///models/tiny"), "--model", "gs:///models/tiny", "no bucket"},
		{"model scheme only", replace(f.pruneArgs("OUT"), f.model, "gs://"), "--model", "gs://", "no bucket"},
		{"model bad bucket", replace(f.pruneArgs("OUT"), f.model, "gs://Models/tiny"), "--model", "gs://Models/tiny", "bucket name"},
		{"calib empty bucket", replace(f.pruneArgs("OUT"), f.corpus, "gs:///c4.jsonl"), "--calib", "gs:///c4.jsonl", "no bucket"},
		{"calib bucket only", replace(f.pruneArgs("OUT"), f.corpus, "gs://b"), "--calib", "gs://b", "names a whole bucket"},
		{"calib bucket slash", replace(f.pruneArgs("OUT"), f.corpus, "gs://b/"), "--calib", "gs://b/", "names a whole bucket"},
		{"calib prefix", replace(f.pruneArgs("OUT"), f.corpus, "gs://b/data/"), "--calib", "gs://b/data/", "ends in /"},
		{"out empty bucket", f.pruneArgs("gs:///out"), "--out", "gs:///out", "no bucket"},
		{"out bucket only", f.pruneArgs("gs://b"), "--out", "gs://b", "names a whole bucket"},
		{"out bucket slash", f.pruneArgs("gs://b/"), "--out", "gs://b/", "names a whole bucket"},
		{"out double slash", f.pruneArgs("gs://b/x//y"), "--out", "gs://b/x//y", "empty path element"},
		{"out misspelt scheme", f.pruneArgs("gs:/b/out"), "--out", "gs:/b/out", "misspelt gs://"},
		{"work-dir empty bucket", f.pruneArgs("OUT", "--work-dir", "gs:///work"), "--work-dir", "gs:///work", "no bucket"},
		{"work-dir dotdot", f.pruneArgs("OUT", "--work-dir", "gs://b/w/../x"), "--work-dir", "gs://b/w/../x", `".."`},
		{"staging empty bucket", f.pruneArgs("gs://b/out", append(dataflow, "--staging-location", "gs:///s")...), "--staging-location", "gs:///s", "no bucket"},
		{"temp empty bucket", f.pruneArgs("gs://b/out", append(dataflow, "--staging-location", "gs://b/s", "--temp-location", "gs:///t")...), "--temp-location", "gs:///t", "no bucket"},
		{"eval model empty bucket", []string{"eval", "--model", "gs:///m", "--data-dir", f.data}, "--model", "gs:///m", "no bucket"},
		{"sparsity model empty bucket", []string{"sparsity", "--model", "gs:///m"}, "--model", "gs:///m", "no bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // a misread relative path would land here
			out := filepath.Join(t.TempDir(), "out")
			args := replace(tc.args, "OUT", out)
			_, _, err := optima(t, args...)
			if err == nil {
				t.Fatalf("optima %s: no error", strings.Join(args, " "))
			}
			for _, w := range []string{tc.flag + " " + tc.url + ":", tc.why} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if ents, _ := os.ReadDir("."); len(ents) != 0 {
				t.Errorf("the working directory holds %v after a rejected run", ents)
			}
			for _, p := range []string{out, out + ".work"} {
				if _, serr := os.Stat(p); serr == nil {
					t.Errorf("%s exists after a rejected run", p)
				}
			}
		})
	}
}
