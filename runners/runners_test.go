package runners

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
)

func TestRunRejectsUnknownAndUnsupported(t *testing.T) {
	for runner, want := range map[string]string{
		"flink":    "not supported yet",
		"dataflow": "not supported yet",
		"spark2":   "unknown",
	} {
		p, _ := beam.NewPipelineWithRoot()
		_, err := Run(context.Background(), runner, p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--runner") {
			t.Errorf("Run(%q): %v, want an error naming --runner and %q", runner, err, want)
		}
	}
}
