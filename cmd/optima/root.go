package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:           "optima",
		Short:         "One-shot LLM pruning with OPTIMA's exact row re-fit, as an Apache Beam pipeline",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			// Beam and its local runner log through slog's default logger:
			// keep their per-bundle lines out of the way of the progress bar
			// unless asked for.
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log the pipeline's progress (Beam and runner messages)")
	root.AddCommand(newPruneCmd(), newEvalCmd(), newSparsityCmd())
	return root
}

// defaultDataDirs is the search path for the data directory when --data-dir
// is not given: $OPTIMA_DATA, then ../shared/data and ../../shared/data
// relative to the working directory, then shared/data.
func defaultDataDirs() []string {
	var dirs []string
	if d := os.Getenv("OPTIMA_DATA"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, filepath.Join("..", "shared", "data"), filepath.Join("..", "..", "shared", "data"), filepath.Join("shared", "data"))
}

// resolveDataDir returns flagValue when set, else the first directory of the
// default search path that exists.
func resolveDataDir(flagValue string) (string, error) {
	if flagValue != "" {
		if st, err := os.Stat(flagValue); err != nil || !st.IsDir() {
			return "", &flagError{"--data-dir", flagValue, "not a directory"}
		}
		return flagValue, nil
	}
	for _, d := range defaultDataDirs() {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
	}
	return "", &flagError{"--data-dir", "", "no data directory found in $OPTIMA_DATA, ../shared/data, ../../shared/data, shared/data; pass --data-dir"}
}

type flagError struct{ flag, value, why string }

func (e *flagError) Error() string {
	if e.value == "" {
		return e.flag + ": " + e.why
	}
	return e.flag + " " + e.value + ": " + e.why
}
