package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/optima-llm/optima/model/loader"
	"github.com/optima-llm/optima/runners"
	"github.com/optima-llm/optima/stages/report"
)

type sparsityOptions struct {
	modelPath string
	jsonOut   bool
	// stdout receives the report (cobra's OutOrStdout).
	stdout io.Writer
}

func newSparsityCmd() *cobra.Command {
	o := &sparsityOptions{}
	cmd := &cobra.Command{
		Use:   "sparsity --model PATH [--json]",
		Short: "Report the zero fraction of every linear weight and of the whole model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.stdout = cmd.OutOrStdout()
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVar(&o.modelPath, "model", "", "GGUF file or Hugging Face model directory")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print JSON")
	return cmd
}

// Validate checks the flags.
func (o *sparsityOptions) Validate() error {
	if o.modelPath == "" {
		return &flagError{"--model", "", "required"}
	}
	return checkPathURLs([]pathFlag{{"--model", o.modelPath, runners.NeedBucket}})
}

// Run loads the model one tensor at a time and prints the report.
func (o *sparsityOptions) Run() error {
	src, err := loader.Open(o.modelPath)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	defer src.Close()
	rep, err := report.Sparsity(src)
	if err != nil {
		return err
	}
	if o.jsonOut {
		return rep.WriteJSON(o.stdout)
	}
	return rep.WriteText(o.stdout)
}
