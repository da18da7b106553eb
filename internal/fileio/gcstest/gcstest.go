// Package gcstest starts a Google Cloud Storage emulator for tests:
// fake-gcs-server's fakestorage, in process, serving HTTP on a free
// localhost port, with STORAGE_EMULATOR_HOST pointing the storage client
// (and so internal/fileio and Beam's gcs filesystem) at it.
package gcstest

import (
	"fmt"
	"net"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Start starts an emulator holding the given (empty) buckets, sets
// STORAGE_EMULATOR_HOST for the rest of the test (t.Setenv, so the test must
// not be parallel) and stops the server when the test ends.
func Start(t testing.TB, buckets ...string) *fakestorage.Server {
	t.Helper()
	// The storage client reads objects through the XML API at
	// http://HOST/bucket/object, which the emulator only routes when HOST is
	// its public host: pick the port first so that both agree.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start GCS emulator: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       uint16(port),
		PublicHost: fmt.Sprintf("127.0.0.1:%d", port),
	})
	if err != nil {
		t.Fatalf("start GCS emulator: %v", err)
	}
	t.Cleanup(srv.Stop)
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL())
	return srv
}
