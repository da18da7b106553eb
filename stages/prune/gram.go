package prune

import (
	"github.com/optima-llm/optima/kernels"
	"github.com/optima-llm/optima/stages/solve"
)

// GramBackend returns the backend to give CalibrateShard in a run whose row
// solve runs on device (solve.Options.Device): be itself for "" and "cpu",
// so the CPU path is unchanged bit for bit; for "cuda", WithGram(be, the
// process's shared CUDA backend (solve.DeviceBackend)): the block's forward
// pass stays on be and only the Gram products XᵀX of hessian.Add run on the
// GPU (kernels/cuda AccumulateGram: FP32 products of 256-token blocks summed
// in float64, the CPU backend's contract). Errors are solve.DeviceBackend's:
// one wrapping cuda.ErrUnavailable without a usable GPU (never a silent CPU
// run), solve.ErrInvalidOptions for an unknown device.
func GramBackend(be kernels.Backend, device string) (kernels.Backend, error) {
	dev, err := solve.DeviceBackend(device)
	if err != nil || dev == nil {
		return be, err
	}
	return WithGram(be, dev), nil
}

// WithGram returns a kernels.Backend that runs AccumulateGram on gram and
// every other operation (Name and Capabilities included) on be. Both must
// be safe for concurrent use, as kernels.Backend requires.
func WithGram(be, gram kernels.Backend) kernels.Backend {
	return gramRouted{Backend: be, gram: gram}
}

type gramRouted struct {
	kernels.Backend
	gram kernels.Backend
}

func (g gramRouted) AccumulateGram(h []float64, x []float32, tokens, in int) {
	g.gram.AccumulateGram(h, x, tokens, in)
}
