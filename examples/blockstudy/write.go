package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
)

func init() {
	register.DoFn4x1[[]byte, func(*string, *string) bool, func(*string, *string) bool, func(string), error](&joinFn{})
	register.Iter2[string, string]()
	register.Emitter1[string]()
}

// joinFn gathers both sides (as side inputs) and writes one line per row
// batch: linear, error with the mask only, error after the OPTIMA re-fit.
type joinFn struct {
	Path string
}

func (f *joinFn) ProcessElement(_ []byte, none, optima func(*string, *string) bool, emit func(string)) error {
	collect := func(it func(*string, *string) bool) []string {
		var k, v string
		var out []string
		for it(&k, &v) {
			out = append(out, k+" "+v)
		}
		sort.Strings(out)
		return out
	}
	a, b := collect(none), collect(optima)
	if len(a) != len(b) {
		return fmt.Errorf("blockstudy: %d vs %d row batches", len(a), len(b))
	}
	var sb strings.Builder
	for i := range a {
		fmt.Fprintf(&sb, "%s | optima: %s\n", a[i], b[i][strings.Index(b[i], "err"):])
	}
	emit(f.Path)
	return os.WriteFile(f.Path, []byte(sb.String()), 0o644)
}

func writeLines(s beam.Scope, none, optima beam.PCollection, path string) {
	beam.ParDo(s, &joinFn{Path: path}, beam.Impulse(s), beam.SideInput{Input: none}, beam.SideInput{Input: optima})
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
