package runners_test

import (
	"testing"

	"github.com/optima-llm/optima/internal/fileio/gcstest"
)

func startGCS(t *testing.T, buckets ...string) { gcstest.Start(t, buckets...) }
