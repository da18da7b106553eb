package prune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/optima-llm/optima/internal/fileio"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/stages/report"
)

// ShardRef points to a file of hidden states entering a block.
type ShardRef struct {
	// Block is the block these hidden states enter.
	Block int `json:"block"`
	// Index is the sample shard's index.
	Index int `json:"index"`
	// Path is the shard file (WriteHidden format).
	Path   string `json:"path"`
	NSeq   int    `json:"nseq"`
	SeqLen int    `json:"seqlen"`
	Hidden int    `json:"hidden"`
	// SHA256 is the hex SHA-256 of the shard file as written
	// (WriteHiddenSum); empty in references made before checksums, which
	// resume unchecked (CheckSHA256).
	SHA256 string `json:"sha256,omitempty"`
}

// BlockDone records a finished block in the work directory: its pruned
// linears' file, their reports, and the shards entering the next block,
// with the SHA-256 of every file the block wrote (see CheckSHA256). Done
// markers written before the checksums existed lack them (the JSON fields
// weights_sha256 and next[].sha256 are absent) and still resume: their
// files are checked by header and size only.
type BlockDone struct {
	Block   int    `json:"block"`
	Weights string `json:"weights"`
	// WeightsSHA256 is the hex SHA-256 of the block file Weights as
	// written (WriteTensorsSum); empty in markers made before checksums.
	WeightsSHA256 string                `json:"weights_sha256,omitempty"`
	Linears       []report.LinearReport `json:"linears"`
	Next          []ShardRef            `json:"next"`
}

// Work is a run's work directory, <root>/<config hash>, a local path or a
// gs:// prefix (internal/fileio); a Flink or Dataflow run's workers need it
// on storage they all reach. It holds the
// hidden-state shards, each finished block's pruned linears and a done
// marker per block, so that an interrupted run resumes after the last
// finished block.
type Work struct {
	Dir string
}

// NewWork returns the work directory for cfg under root and records the
// configuration in it.
func NewWork(root string, cfg *Config) (Work, error) {
	w := Work{Dir: fileio.Join(root, cfg.Hash())}
	if err := fileio.MkdirAll(w.Dir); err != nil {
		return w, fmt.Errorf("work directory: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return w, err
	}
	return w, WriteFileAtomic(fileio.Join(w.Dir, "config.json"), b)
}

// HiddenPath is the shard file of sample shard i entering block b.
func (w Work) HiddenPath(b, i int) string {
	return fileio.Join(w.Dir, fmt.Sprintf("hidden-b%03d-s%03d.bin", b, i))
}

// BlockPath is the safetensors file of block b's pruned linears.
func (w Work) BlockPath(b int) string {
	return fileio.Join(w.Dir, fmt.Sprintf("block-%03d.safetensors", b))
}

// DonePath is block b's done marker.
func (w Work) DonePath(b int) string {
	return fileio.Join(w.Dir, fmt.Sprintf("block-%03d.done.json", b))
}

// MarkDone writes block d.Block's done marker atomically, then removes the
// shards that entered the block (they are no longer needed for a resume).
func (w Work) MarkDone(d BlockDone) error {
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(w.DonePath(d.Block), b); err != nil {
		return err
	}
	ctx := context.Background()
	entered, _ := fileio.Glob(ctx, fileio.Join(w.Dir, fmt.Sprintf("hidden-b%03d-s*.bin", d.Block)))
	for _, p := range entered {
		fileio.Remove(ctx, p)
	}
	return nil
}

// Done returns the done markers of blocks 0..k-1 for the largest k such
// that all of them exist with their weight files and, unless k is the number
// of blocks, block k-1's output shards (the inputs of block k) exist too.
// Earlier blocks' shards are deleted as blocks finish, so only the last
// marker's shards matter for a resume.
func (w Work) Done(nblocks int) ([]BlockDone, error) {
	ctx := context.Background()
	var out []BlockDone
	for b := 0; b < nblocks; b++ {
		raw, err := fileio.ReadFile(ctx, w.DonePath(b))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		var d BlockDone
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("resume: %s: %w", w.DonePath(b), err)
		}
		if ok, err := fileio.Exists(ctx, d.Weights); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		} else if !ok {
			break
		}
		out = append(out, d)
	}
	for len(out) > 0 && len(out) < nblocks {
		last := out[len(out)-1]
		complete := len(last.Next) > 0
		for _, s := range last.Next {
			if ok, err := fileio.Exists(ctx, s.Path); err != nil {
				return nil, fmt.Errorf("resume: %w", err)
			} else if !ok {
				complete = false
			}
		}
		if complete {
			break
		}
		out = out[:len(out)-1]
	}
	return out, nil
}

// PrunedWeights returns block b's weights for the forward pass: dense
// tensors from src with the pruned linears of the block file at path laid
// over them, and a separate adapter (lora_A/lora_B in the block file)
// merged into its weight, so that the next block sees this block's output
// as the written model computes it.
func PrunedWeights(src model.Source, fam model.Family, b int, path string) (model.Weights, error) {
	w, err := LoadWeights(src, fam.BlockTensors(b))
	if err != nil {
		return nil, err
	}
	pruned, err := ReadTensors(path)
	if err != nil {
		return nil, err
	}
	for name, t := range pruned {
		w[name] = t
	}
	if err := mergeAdapters(w); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}
