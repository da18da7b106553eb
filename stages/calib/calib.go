// Package calib builds the calibration token windows that the pruning pipeline
// runs through the model: it reads JSON Lines corpora, shuffles and joins the
// documents, tokenizes the joined text once, cuts it into non-overlapping
// windows and samples some of them with a seeded generator, and splits the
// windows into shards for parallel workers.
//
// Everything here is deterministic for a given input and seed.
package calib

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/optima-llm/optima/model/tokenizer"
)

// Separator joins the shuffled documents into one text before tokenization,
// as the SparseGPT/Wanda/OPTIMA data loaders join WikiText-2 rows.
const Separator = "\n\n"

// pcgStream is the second PCG seed word; the first is the user's seed.
// Fixed so that a seed means the same windows in every release.
const pcgStream = 0x9e3779b97f4a7c15

// NewRand returns the generator Windows uses for a seed:
// rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)).
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, pcgStream))
}

// ReadJSONL reads a JSON Lines corpus with one object {"text": string} per
// line (other fields are ignored) and returns the texts in file order. Blank
// lines are skipped, and so is a UTF-8 byte order mark at the start of the
// file (Windows editors write one). A path ending in ".gz" is read through gzip (C4 shards
// are distributed as .json.gz). Errors name the file and the 1-based line: a
// line that is not a JSON object, has no "text" field, or whose "text" is not a
// string.
func ReadJSONL(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read corpus %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	docs, err := parseJSONL(r)
	if err != nil {
		return nil, fmt.Errorf("read corpus %s: %w", path, err)
	}
	return docs, nil
}

// utf8BOM is the UTF-8 encoding of U+FEFF, the byte order mark.
var utf8BOM = []byte("\uFEFF")

// parseJSONL does ReadJSONL's work on a stream; errors name the line. A
// leading UTF-8 byte order mark is skipped.
func parseJSONL(r io.Reader) ([]string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var docs []string
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if line == 1 {
			// A UTF-8 byte order mark, which some editors write at the
			// start of a text file, is not JSON; only the first line
			// may carry it.
			b = bytes.TrimPrefix(b, utf8BOM)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var rec struct {
				Text json.RawMessage `json:"text"`
			}
			if uerr := json.Unmarshal(t, &rec); uerr != nil {
				return nil, fmt.Errorf("line %d: %w", line, uerr)
			}
			if len(rec.Text) == 0 {
				return nil, fmt.Errorf("line %d: no \"text\" field", line)
			}
			var s string
			if uerr := json.Unmarshal(rec.Text, &s); uerr != nil || string(rec.Text) == "null" {
				return nil, fmt.Errorf("line %d: \"text\" is not a string", line)
			}
			docs = append(docs, s)
		}
		if err != nil { // io.EOF after the last line
			return docs, nil
		}
	}
}

// Windows builds nsamples calibration sequences of seqlen token ids each.
//
// The documents (empty ones are dropped) are shuffled with NewRand(seed),
// joined with Separator into one text and tokenized once without special
// tokens, so short documents are concatenated and long ones span windows. The
// token stream is cut into floor(tokens/seqlen) non-overlapping windows (the
// tail is dropped) and nsamples distinct windows are drawn with the same
// generator, returned in stream order. Each window is a fresh slice.
//
// It returns an error when nsamples <= 0, seqlen <= 1, or the corpus holds
// fewer than nsamples windows (the message gives both token counts and names
// --nsamples and --seqlen).
func Windows(docs []string, tok tokenizer.Tokenizer, nsamples, seqlen int, seed uint64) ([][]int32, error) {
	if nsamples <= 0 {
		return nil, fmt.Errorf("calibration: --nsamples must be positive, got %d", nsamples)
	}
	if seqlen <= 1 {
		return nil, fmt.Errorf("calibration: --seqlen must be at least 2, got %d", seqlen)
	}
	rng := NewRand(seed)
	order := make([]string, 0, len(docs))
	for _, d := range docs {
		if d != "" {
			order = append(order, d)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	ids := tok.Encode(strings.Join(order, Separator))

	nwin := len(ids) / seqlen
	if nwin < nsamples {
		return nil, fmt.Errorf("calibration: corpus has %d tokens (%d documents), %d windows of %d tokens; "+
			"--nsamples=%d --seqlen=%d need %d tokens: give a larger corpus or lower --nsamples/--seqlen",
			len(ids), len(order), nwin, seqlen, nsamples, seqlen, nsamples*seqlen)
	}
	picks := rng.Perm(nwin)[:nsamples]
	slices.Sort(picks)
	out := make([][]int32, nsamples)
	for i, w := range picks {
		out[i] = slices.Clone(ids[w*seqlen : (w+1)*seqlen])
	}
	return out, nil
}

// Shard splits windows into min(shards, len(windows)) contiguous shards whose
// sizes differ by at most one, the larger ones first. The shards alias the
// input's window slices (no token is copied). It returns nil for no windows
// and panics when shards <= 0.
func Shard(windows [][]int32, shards int) [][][]int32 {
	if shards <= 0 {
		panic(fmt.Sprintf("calib.Shard: shards must be positive, got %d", shards))
	}
	n := len(windows)
	if n == 0 {
		return nil
	}
	shards = min(shards, n)
	out := make([][][]int32, shards)
	base, extra := n/shards, n%shards
	start := 0
	for i := range out {
		size := base
		if i < extra {
			size++
		}
		out[i] = windows[start : start+size : start+size]
		start += size
	}
	return out
}
