package main

import (
	"bytes"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// logProgressEvery is how often a progress bar writing to a file or a pipe
// prints a line.
const logProgressEvery = 30 * time.Second

// isTerminal reports whether w is a terminal; a variable so that tests can
// pretend.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newBar is progressbar.NewOptions(total, opts...) writing to w. On a
// terminal the bar is redrawn in place and cleared when it finishes.
// Elsewhere (stderr sent to a log file or a pipe) it prints a plain line at
// most every 30 s and a last one when it finishes, so that a log holds a few
// readable lines instead of every redraw joined by carriage returns.
func newBar(total int, w io.Writer, opts ...progressbar.Option) *progressbar.ProgressBar {
	if isTerminal(w) {
		return progressbar.NewOptions(total, append(opts, progressbar.OptionSetWriter(w), progressbar.OptionClearOnFinish())...)
	}
	return progressbar.NewOptions(total, append(opts,
		progressbar.OptionSetWriter(&lineWriter{w: w}),
		progressbar.OptionThrottle(logProgressEvery))...)
}

// lineWriter turns a progress bar's carriage-return redraws into lines:
// every non-blank segment between carriage returns or newlines becomes one
// line on w, and the blank segments a bar writes to clear itself are dropped.
type lineWriter struct{ w io.Writer }

func (l *lineWriter) Write(p []byte) (int, error) {
	for _, seg := range bytes.FieldsFunc(p, func(r rune) bool { return r == '\r' || r == '\n' }) {
		seg = bytes.TrimRight(seg, " ")
		if len(bytes.TrimSpace(seg)) == 0 {
			continue
		}
		if _, err := l.w.Write(append(seg[:len(seg):len(seg)], '\n')); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// advanceBar moves bar to done only when done is past its current count.
// progressbar estimates the time left from the rates between its updates;
// an update that adds nothing (a poll between two blocks) counts as a rate
// of 0, and ten of them made the estimate infinite, printed "0s".
func advanceBar(bar barSetter, done int) {
	if int64(done) > bar.State().CurrentNum {
		bar.Set(done)
	}
}

// barSetter is the part of *progressbar.ProgressBar advanceBar uses.
type barSetter interface {
	Set(int) error
	State() progressbar.State
}
