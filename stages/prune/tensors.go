package prune

import (
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
)

// WriteTensors writes a block's pruned linears to path (float32
// safetensors, atomically).
func WriteTensors(path string, tensors []*model.Tensor) error {
	return safetensors.WriteFile(path, tensors, safetensors.WriteOptions{})
}

// ReadTensors reads every tensor of a file written by WriteTensors.
func ReadTensors(path string) (map[string]*model.Tensor, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*model.Tensor{}
	for _, n := range f.Names() {
		t, err := f.Load(n)
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}
