package runners

import (
	"fmt"
	"strings"
)

// URLNeed is what a path flag's gs:// value must name (CheckGCSURL).
type URLNeed int

const (
	// NeedBucket accepts gs://BUCKET (a bucket root) or gs://BUCKET/PATH:
	// --model (a GGUF object or a model directory), --work-dir,
	// --staging-location, --temp-location.
	NeedBucket URLNeed = iota
	// NeedPrefix wants gs://BUCKET/PATH with a non-empty PATH, a
	// "directory" whose objects may all be replaced (--out); a trailing
	// slash is allowed.
	NeedPrefix
	// NeedObject wants gs://BUCKET/OBJECT naming one object (--calib): no
	// trailing slash.
	NeedObject
)

// CheckGCSURL checks the value of the path flag named flag (used in the
// error with the value). A local path passes, except one that looks like a
// misspelt gs:// URL ("gs:/b/x", "gs:b", "GS://b"), which would otherwise be
// created as a local directory named "gs:". A gs:// URL needs a bucket name
// of lowercase letters, digits, '-', '_' and '.' that starts and ends with a
// letter or digit (GCS's rule; the length is left to GCS), a path without
// empty, "." or ".." elements (internal/fileio cleans those away, so
// "gs:///x" would silently become the bucket "x" and "gs://b/a//c" the
// object "a/c"), and what need asks for.
func CheckGCSURL(flag, value string, need URLNeed) error {
	bad := func(why string) error { return &flagError{flag, value, why} }
	if !strings.HasPrefix(value, "gs://") {
		if strings.HasPrefix(strings.ToLower(value), "gs:") {
			return bad("looks like a misspelt gs:// URL: write gs://BUCKET/PATH (or ./" + value + " for a local path)")
		}
		return nil
	}
	want := map[URLNeed]string{NeedBucket: "gs://BUCKET[/PATH]", NeedPrefix: "gs://BUCKET/PATH", NeedObject: "gs://BUCKET/OBJECT"}[need]
	bucket, path, _ := strings.Cut(strings.TrimPrefix(value, "gs://"), "/")
	if bucket == "" {
		return bad("no bucket name (want " + want + ")")
	}
	if !validBucket(bucket) {
		return bad(fmt.Sprintf("bucket name %q: GCS allows lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit", bucket))
	}
	trimmed := strings.TrimSuffix(path, "/")
	if trimmed == "" {
		if need != NeedBucket {
			return bad("names a whole bucket (want " + want + ")")
		}
		return nil
	}
	for _, el := range strings.Split(trimmed, "/") {
		switch el {
		case "":
			return bad("empty path element (//) in the object name")
		case ".", "..":
			return bad(`"." or ".." in the object name`)
		}
	}
	if need == NeedObject && strings.HasSuffix(path, "/") {
		return bad("ends in /: name the object (want " + want + ")")
	}
	return nil
}

// validBucket reports whether b has only the characters GCS allows in a
// bucket name and starts and ends with a letter or digit.
func validBucket(b string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i < len(b); i++ {
		if c := b[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return alnum(b[0]) && alnum(b[len(b)-1])
}
