// Package fileio is optima's path-agnostic file access: local paths and
// gs://bucket/object URLs, so that models, calibration data, outputs and a
// run's work directory can live on local disk or on Google Cloud Storage (a
// shared location is what Flink and Dataflow workers need).
//
// Whole-file reads, writes, listing and removal go through Beam's filesystem
// registry (github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem with its
// local and gcs implementations). Ranged reads (OpenReaderAt, used to read
// single tensors of large safetensors and GGUF files) use
// cloud.google.com/go/storage range readers directly, since Beam's
// filesystem interface only streams whole objects.
//
// Local paths behave exactly as the os package does: writes go to a
// temporary name in the same directory, are synced and renamed. A GCS
// object only becomes visible when its upload completes, so a gs:// write is
// atomic per object too. Set STORAGE_EMULATOR_HOST (host:port) to talk to a
// GCS emulator such as fake-gcs-server.
package fileio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs" // registers gs://
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// GCSScheme prefixes Google Cloud Storage URLs.
const GCSScheme = "gs://"

// ErrNotExist is wrapped by errors about a missing file or object, so that
// errors.Is(err, fs.ErrNotExist) holds for local and gs:// paths alike.
var ErrNotExist = fs.ErrNotExist

// IsRemote reports whether p is a gs:// URL (anything else is a local path).
func IsRemote(p string) bool { return strings.HasPrefix(p, GCSScheme) }

// Join joins path elements: filepath.Join for local paths, and for gs://
// URLs a slash join that keeps the scheme's "//" and cleans the object part.
func Join(elem ...string) string {
	if len(elem) == 0 || !IsRemote(elem[0]) {
		return filepath.Join(elem...)
	}
	rest := strings.TrimPrefix(elem[0], GCSScheme)
	parts := append([]string{rest}, elem[1:]...)
	return GCSScheme + strings.TrimPrefix(path.Join(parts...), "/")
}

// Dir is filepath.Dir for local paths and the parent "directory" of a gs://
// URL (gs://b/a/c → gs://b/a; gs://b/a → gs://b).
func Dir(p string) string {
	if !IsRemote(p) {
		return filepath.Dir(p)
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(p, GCSScheme), "/")
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		return GCSScheme + rest[:i]
	}
	return GCSScheme + rest
}

// Base is filepath.Base for local paths and the last element of a gs:// URL.
func Base(p string) string {
	if !IsRemote(p) {
		return filepath.Base(p)
	}
	return path.Base(strings.TrimPrefix(p, GCSScheme))
}

// Clean is filepath.Clean for local paths; gs:// URLs lose a trailing slash
// and duplicate slashes in the object part.
func Clean(p string) string {
	if !IsRemote(p) {
		return filepath.Clean(p)
	}
	return Join(p)
}

// ParseGCS splits gs://bucket/object into its bucket and object name. The
// object may be empty (a bucket URL). Errors name the URL.
func ParseGCS(u string) (bucket, object string, err error) {
	if !IsRemote(u) {
		return "", "", fmt.Errorf("fileio: %q is not a gs:// URL", u)
	}
	rest := strings.TrimPrefix(u, GCSScheme)
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("fileio: %q has no bucket", u)
	}
	return bucket, object, nil
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*storage.Client{}
)

// gcsClient returns the process's storage client for the current
// STORAGE_EMULATOR_HOST (one per distinct value, so tests that start an
// emulator get a client that talks to it).
func gcsClient(ctx context.Context) (*storage.Client, error) {
	key := os.Getenv("STORAGE_EMULATOR_HOST")
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c := clients[key]; c != nil {
		return c, nil
	}
	c, err := storage.NewClient(context.WithoutCancel(ctx))
	if err != nil {
		// Without credentials, public buckets are still readable.
		c, err = storage.NewClient(context.WithoutCancel(ctx), option.WithoutAuthentication())
		if err != nil {
			return nil, fmt.Errorf("fileio: gcs client: %w", err)
		}
	}
	clients[key] = c
	return c, nil
}

var (
	fsMu    sync.Mutex
	fsCache = map[string]filesystem.Interface{}
)

// keptFS is a cached filesystem whose Close does nothing: the process keeps
// one per scheme (and emulator host), since Beam's gcs filesystem makes a new
// storage client, with its credential lookup, on every filesystem.New.
type keptFS struct{ filesystem.Interface }

func (keptFS) Close() error { return nil }

// beamFS returns Beam's filesystem for p's scheme. The caller closes it.
func beamFS(ctx context.Context, p string) (filesystem.Interface, error) {
	scheme, _, _ := strings.Cut(p, "://")
	key := scheme + "|" + os.Getenv("STORAGE_EMULATOR_HOST")
	fsMu.Lock()
	defer fsMu.Unlock()
	if f := fsCache[key]; f != nil {
		return keptFS{f}, nil
	}
	fsys, err := filesystem.New(context.WithoutCancel(ctx), p)
	if err != nil {
		return nil, fmt.Errorf("fileio: %s: %w", p, err)
	}
	fsCache[key] = fsys
	return keptFS{fsys}, nil
}

// notExist maps GCS's "object does not exist" onto fs.ErrNotExist.
func notExist(p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return fmt.Errorf("%s: %w (%v)", p, fs.ErrNotExist, err)
	}
	return err
}

// ReadFile reads the whole file at p. A missing file is an error wrapping
// fs.ErrNotExist that names p.
func ReadFile(ctx context.Context, p string) ([]byte, error) {
	if !IsRemote(p) {
		return os.ReadFile(p)
	}
	fsys, err := beamFS(ctx, p)
	if err != nil {
		return nil, err
	}
	defer fsys.Close()
	r, err := fsys.OpenRead(ctx, p)
	if err != nil {
		return nil, notExist(p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, notExist(p, err))
	}
	return b, nil
}

// WriteFile writes data to p atomically: locally through a temporary file in
// the same directory (created with its parents), synced and renamed; on GCS
// as one object upload, which becomes visible only when complete.
func WriteFile(ctx context.Context, p string, data []byte) error {
	if !IsRemote(p) {
		return writeLocalAtomic(p, data)
	}
	fsys, err := beamFS(ctx, p)
	if err != nil {
		return err
	}
	defer fsys.Close()
	w, err := fsys.OpenWrite(ctx, p)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func writeLocalAtomic(p string, data []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp := f.Name()
	// CreateTemp makes 0600; model directories hold such files (the PEFT
	// adapter_config.json), so make it 0644 as the directory's other files
	// (not narrowed by the umask, as os.WriteFile would).
	werr := f.Chmod(0o644)
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, werr)
	}
	return nil
}

// CopyFile copies the local file src to dst (local or gs://), atomically as
// WriteFile does, streaming rather than holding the file in memory.
func CopyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if !IsRemote(dst) {
		b, err := io.ReadAll(in)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		return writeLocalAtomic(dst, b)
	}
	fsys, err := beamFS(ctx, dst)
	if err != nil {
		return err
	}
	defer fsys.Close()
	w, err := fsys.OpenWrite(ctx, dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(w, in); err != nil {
		w.Close()
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}

// Size returns the byte size of the file at p. A missing file is an error
// wrapping fs.ErrNotExist.
func Size(ctx context.Context, p string) (int64, error) {
	if !IsRemote(p) {
		st, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		if st.IsDir() {
			return 0, fmt.Errorf("%s: is a directory", p)
		}
		return st.Size(), nil
	}
	fsys, err := beamFS(ctx, p)
	if err != nil {
		return 0, err
	}
	defer fsys.Close()
	n, err := fsys.Size(ctx, p)
	return n, notExist(p, err)
}

// Exists reports whether the file p exists (for gs://, whether the object
// exists). Errors other than "does not exist" are returned.
func Exists(ctx context.Context, p string) (bool, error) {
	_, err := Size(ctx, p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// IsDir reports whether p is a directory: a local directory, or a gs://
// prefix under which at least one object exists.
func IsDir(ctx context.Context, p string) (bool, error) {
	if !IsRemote(p) {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil && st.IsDir(), err
	}
	bucket, object, err := ParseGCS(p)
	if err != nil {
		return false, err
	}
	c, err := gcsClient(ctx)
	if err != nil {
		return false, err
	}
	prefix := strings.TrimSuffix(object, "/") + "/"
	if object == "" {
		prefix = ""
	}
	it := c.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: prefix})
	_, err = it.Next()
	if err == nil {
		return true, nil
	}
	if errors.Is(err, iterator.Done) {
		return false, nil
	}
	return false, notExist(p, err)
}

// Glob lists the files matching pattern (a filepath.Match pattern in the
// last element; Beam's glob rules for gs://), sorted as the filesystem
// returns them.
func Glob(ctx context.Context, pattern string) ([]string, error) {
	if !IsRemote(pattern) {
		return filepath.Glob(pattern)
	}
	fsys, err := beamFS(ctx, pattern)
	if err != nil {
		return nil, err
	}
	defer fsys.Close()
	return fsys.List(ctx, pattern)
}

// Remove removes the file p; a missing file is not an error.
func Remove(ctx context.Context, p string) error {
	if !IsRemote(p) {
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	fsys, err := beamFS(ctx, p)
	if err != nil {
		return err
	}
	defer fsys.Close()
	rm, ok := fsys.(keptFS).Interface.(filesystem.Remover)
	if !ok {
		return fmt.Errorf("fileio: %s: filesystem cannot remove files", p)
	}
	if err := notExist(p, rm.Remove(ctx, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll removes the directory p and everything under it (os.RemoveAll
// locally; every object under the prefix p/ on GCS).
func RemoveAll(ctx context.Context, p string) error {
	if !IsRemote(p) {
		return os.RemoveAll(p)
	}
	files, err := Glob(ctx, strings.TrimSuffix(p, "/")+"/**")
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := Remove(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// MkdirAll creates the local directory p and its parents; GCS has no
// directories, so for gs:// it only checks the URL.
func MkdirAll(p string) error {
	if !IsRemote(p) {
		return os.MkdirAll(p, 0o755)
	}
	_, _, err := ParseGCS(p)
	return err
}

// ReaderAt is a random-access view of one file: ReadAt as io.ReaderAt, the
// file's Size, and Close.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// OpenReaderAt opens p for random access. Locally it is the *os.File; on
// GCS every ReadAt is one ranged GET of exactly the bytes asked for, so a
// reader of one tensor never downloads the whole file. A missing file is an
// error wrapping fs.ErrNotExist.
func OpenReaderAt(ctx context.Context, p string) (ReaderAt, error) {
	if !IsRemote(p) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s: is a directory", p)
		}
		return &localReaderAt{File: f, size: st.Size()}, nil
	}
	bucket, object, err := ParseGCS(p)
	if err != nil {
		return nil, err
	}
	c, err := gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	obj := c.Bucket(bucket).Object(object)
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return nil, notExist(p, err)
	}
	// Pin the generation: a concurrent overwrite cannot mix two versions.
	return &gcsReaderAt{ctx: context.WithoutCancel(ctx), obj: obj.Generation(attrs.Generation), size: attrs.Size, crc32c: attrs.CRC32C, name: p}, nil
}

type localReaderAt struct {
	*os.File
	size int64
}

func (l *localReaderAt) Size() int64 { return l.size }

type gcsReaderAt struct {
	ctx    context.Context
	obj    *storage.ObjectHandle
	size   int64
	crc32c uint32
	name   string

	mu     sync.Mutex
	ranged int64 // ranged reads made, for tests
}

func (g *gcsReaderAt) Size() int64  { return g.size }
func (g *gcsReaderAt) Close() error { return nil }

// CRC32C is the CRC-32C (Castagnoli) checksum of the whole object as GCS
// stores it with every object (computed by GCS on upload), so that callers
// can tell contents apart without reading them.
func (g *gcsReaderAt) CRC32C() uint32 { return g.crc32c }

// ReadAt reads len(b) bytes at off with one ranged GET. Reading past the
// end returns the bytes there and io.EOF, as io.ReaderAt requires.
func (g *gcsReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", g.name, off)
	}
	if off >= g.size {
		if len(b) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int64(len(b))
	short := false
	if off+n > g.size {
		n, short = g.size-off, true
	}
	g.mu.Lock()
	g.ranged++
	g.mu.Unlock()
	r, err := g.obj.NewRangeReader(g.ctx, off, n)
	if err != nil {
		return 0, fmt.Errorf("read %s [%d, %d): %w", g.name, off, off+n, notExist(g.name, err))
	}
	defer r.Close()
	got, err := io.ReadFull(r, b[:n])
	if err != nil {
		return got, fmt.Errorf("read %s [%d, %d): %w", g.name, off, off+n, err)
	}
	if short {
		return got, io.EOF
	}
	return got, nil
}

// RangedReads returns the number of ranged GETs made through r when r was
// opened on a gs:// URL, and -1 otherwise. Tests use it to check that a
// reader fetched parts of a file, not all of it.
func RangedReads(r ReaderAt) int64 {
	g, ok := r.(*gcsReaderAt)
	if !ok {
		return -1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ranged
}
