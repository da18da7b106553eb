package runners

import (
	"strings"
	"testing"
)

// TestCheckGCSURL: every malformed gs:// value is an error naming the flag
// and the value; well-formed ones and local paths pass. Before the check,
// "gs:///x" reached internal/fileio, whose Clean turns it into gs://x (the
// bucket "x").
func TestCheckGCSURL(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		need  URLNeed
		want  string // "" means valid; else a substring of the error besides the flag and value
	}{
		{"local", "/data/calib.jsonl", NeedObject, ""},
		{"relative local", "out/model", NeedPrefix, ""},
		{"empty", "", NeedObject, ""},
		{"bucket root", "gs://bkt", NeedBucket, ""},
		{"bucket root slash", "gs://bkt/", NeedBucket, ""},
		{"bucket prefix", "gs://bkt/work", NeedBucket, ""},
		{"prefix", "gs://bkt/out/pruned", NeedPrefix, ""},
		{"prefix slash", "gs://bkt/out/pruned/", NeedPrefix, ""},
		{"object", "gs://my-bkt_1.example/data/c4.jsonl", NeedObject, ""},

		{"scheme only", "gs://", NeedBucket, "no bucket"},
		{"empty bucket", "gs:///x", NeedBucket, "no bucket"},
		{"empty bucket prefix", "gs:///x/y", NeedPrefix, "no bucket"},
		{"empty bucket object", "gs:///x.jsonl", NeedObject, "no bucket"},
		{"bucket only for a prefix", "gs://b", NeedPrefix, "names a whole bucket"},
		{"bucket slash for a prefix", "gs://b/", NeedPrefix, "names a whole bucket"},
		{"bucket only for an object", "gs://b", NeedObject, "names a whole bucket"},
		{"bucket slash for an object", "gs://b/", NeedObject, "names a whole bucket"},
		{"object with trailing slash", "gs://b/data/", NeedObject, "ends in /"},
		{"double slash", "gs://b/a//c", NeedPrefix, "empty path element"},
		{"dot element", "gs://b/a/./c", NeedBucket, `"." or ".."`},
		{"dotdot element", "gs://b/a/../c", NeedObject, `"." or ".."`},
		{"upper-case bucket", "gs://Bucket/x", NeedBucket, "bucket name"},
		{"space in bucket", "gs://my bucket/x", NeedBucket, "bucket name"},
		{"bucket starts with dash", "gs://-b/x", NeedBucket, "bucket name"},
		{"bucket ends with dot", "gs://b./x", NeedBucket, "bucket name"},
		{"one slash", "gs:/b/x", NeedBucket, "misspelt gs://"},
		{"no slash", "gs:b/x", NeedPrefix, "misspelt gs://"},
		{"upper-case scheme", "GS://b/x", NeedObject, "misspelt gs://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGCSURL("--flag", tc.value, tc.need)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckGCSURL(%q): %v", tc.value, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckGCSURL(%q): no error, want one containing %q", tc.value, tc.want)
			}
			for _, w := range []string{"--flag " + tc.value + ":", tc.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckGCSURL(%q) = %q, want it to contain %q", tc.value, err, w)
				}
			}
		})
	}
}
