// Command optima prunes large language models in one shot with OPTIMA's
// exact row re-fit, as an Apache Beam pipeline, and evaluates them.
//
//	optima prune    --model M --method wanda --sparsity 0.5 --update optima --calib C4.jsonl --out DIR
//	optima eval     --model DIR --task wikitext2 --seqlen 2048 --json
//	optima sparsity --model DIR --json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
)

func main() {
	// Beam re-runs this binary as a worker (--worker=true ...) on remote
	// runners: those flags belong to Beam's flag set, not to the CLI.
	if isWorker(os.Args[1:]) {
		flag.Parse()
		beam.Init()
		return
	}
	beam.Init()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "optima:", err)
		os.Exit(1)
	}
}

func isWorker(args []string) bool {
	for _, a := range args {
		if a == "--worker" || strings.HasPrefix(a, "--worker=") || a == "-worker" || strings.HasPrefix(a, "-worker=") {
			return true
		}
	}
	return false
}
