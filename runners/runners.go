// Package runners is the one place that turns optima's --runner choice into
// a Beam run. Today it runs pipelines on Beam's local runner, Prism, in
// process (the default). Flink and Dataflow submission are tracked by the
// runners issue and answer with a clear error until then.
package runners

import (
	"context"
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
)

// Local is the default runner: Beam's Prism runner, in process, with the Go
// workers in loopback mode.
const Local = "local"

// Names lists the accepted --runner values.
func Names() []string { return []string{Local, "prism"} }

// Run executes p on the named runner and returns the pipeline's result.
func Run(ctx context.Context, runner string, p *beam.Pipeline) (beam.PipelineResult, error) {
	switch runner {
	case "", Local, "prism":
		return prism.Execute(ctx, p)
	case "flink", "dataflow":
		return nil, fmt.Errorf("--runner %s: not supported yet (local runs only; see the runners issue)", runner)
	default:
		return nil, fmt.Errorf("--runner %q: unknown (known: %v)", runner, Names())
	}
}
