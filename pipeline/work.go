package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/optima-llm/optima/internal/fileio"
	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/safetensors"
	"github.com/optima-llm/optima/stages/prune"
)

// resumable returns the finished blocks of work that a resume can reuse:
// prune.Work.Done's rule (the leading blocks whose done marker and weight
// file exist, less trailing ones whose output shards are gone), with every
// file it reuses checked first: a done marker must parse and name its
// block, a block file must be safetensors whose header fits the file and
// holds each pruned linear as float32 [Out, In], and the shards entering
// the next block must have the header and the size of their reference;
// and every file whose SHA-256 the marker records (prune.BlockDone's
// WeightsSHA256, prune.ShardRef's SHA256) must have that digest, read
// whole (prune.CheckSHA256), which catches bytes garbled behind an intact
// header. A marker written before checksums resumes with the header checks
// alone. A file that fails is corrupt (a killed run, a full disk, bit rot,
// a bad copy): it is reported with log.Warn naming it, removed unless
// dryRun, and the steps from the first block that needs it are redone. The
// done markers of every block from the resume point on are removed too
// (unless dryRun), so that they do not count as finished while their
// blocks are redone.
//
// Paths are those of the work directory, whatever a marker recorded, so a
// work directory that was moved still resumes. Errors are returned only
// for files that cannot be read at all (permissions, a network failure).
func resumable(ctx context.Context, work prune.Work, fam model.Family, cfg *prune.Config, dryRun bool, log *slog.Logger) ([]prune.BlockDone, error) {
	n := fam.NumBlocks()
	corrupt := func(path string, why error) {
		log.Warn("corrupt file in the work directory; redoing the step that wrote it", "file", path, "error", why)
		if !dryRun {
			fileio.Remove(ctx, path)
		}
	}
	var out []prune.BlockDone
	for b := 0; b < n; b++ {
		raw, err := fileio.ReadFile(ctx, work.DonePath(b))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		var d prune.BlockDone
		if err := json.Unmarshal(raw, &d); err != nil {
			corrupt(work.DonePath(b), err)
			break
		}
		if d.Block != b {
			corrupt(work.DonePath(b), fmt.Errorf("records block %d", d.Block))
			break
		}
		d.Weights = work.BlockPath(b)
		for i := range d.Next {
			d.Next[i].Path = work.HiddenPath(b+1, d.Next[i].Index)
		}
		if ok, err := fileio.Exists(ctx, d.Weights); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		} else if !ok {
			break
		}
		if err := checkBlockFile(ctx, d.Weights, d.WeightsSHA256, fam, b, cfg); err != nil {
			corrupt(d.Weights, err)
			break
		}
		out = append(out, d)
	}
	for len(out) > 0 && len(out) < n {
		last := out[len(out)-1]
		complete := len(last.Next) > 0
		for i, s := range last.Next {
			if ok, err := fileio.Exists(ctx, s.Path); err != nil {
				return nil, fmt.Errorf("resume: %w", err)
			} else if !ok {
				complete = false
				continue
			}
			if err := checkShard(ctx, s, i, last.Block+1, fam.Config().HiddenSize); err != nil {
				corrupt(s.Path, err)
				complete = false
			}
		}
		if complete {
			break
		}
		out = out[:len(out)-1]
	}
	if !dryRun {
		for b := len(out); b < n; b++ {
			if err := fileio.Remove(ctx, work.DonePath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("resume: %w", err)
			}
		}
	}
	return out, nil
}

// checkBlockFile checks that the block file at path is a safetensors file
// whose header is whole and fits the file, holding every pruned linear of
// block b as float32 [Out, In], and, when sum is not empty, whose SHA-256
// is sum.
func checkBlockFile(ctx context.Context, path, sum string, fam model.Family, b int, cfg *prune.Config) error {
	r, err := fileio.OpenReaderAt(ctx, path)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := safetensors.Parse(r, r.Size(), path)
	if err != nil {
		return err
	}
	for _, l := range fam.Linears(b) {
		if !cfg.Prunable(l) {
			continue
		}
		ti, ok := f.Info(l.Weight())
		if !ok {
			return fmt.Errorf("no tensor %s", l.Weight())
		}
		if ti.DType != safetensors.F32 || len(ti.Shape) != 2 || ti.Shape[0] != l.Out || ti.Shape[1] != l.In {
			return fmt.Errorf("tensor %s is %s %v, want F32 [%d %d]", l.Weight(), ti.DType, ti.Shape, l.Out, l.In)
		}
	}
	return prune.CheckSHA256(r, r.Size(), sum)
}

// checkShard checks the shard file of ref (the i-th shard entering block
// b) against its reference: magic, dimensions, hidden size and file size
// (prune.CheckShardHeader), then its SHA-256 when ref records one.
func checkShard(ctx context.Context, ref prune.ShardRef, i, b, hidden int) error {
	if ref.Index != i || ref.Block != b {
		return fmt.Errorf("the done marker lists shard %d entering block %d as shard %d entering block %d", i, b, ref.Index, ref.Block)
	}
	if ref.Hidden != hidden {
		return fmt.Errorf("the done marker says hidden size %d, the model's is %d", ref.Hidden, hidden)
	}
	r, err := fileio.OpenReaderAt(ctx, ref.Path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := prune.CheckShardHeader(r, r.Size(), ref); err != nil {
		return err
	}
	return prune.CheckSHA256(r, r.Size(), ref.SHA256)
}

// workKeyRE matches a work directory's name (workKey).
var workKeyRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// workFileRE matches the files a work directory holds: its records
// (config.json, inputs.json), block files and done markers, hidden-state
// shards, and the temporary files of their atomic writes (".NAME.tmp-N",
// internal/fileio and model/safetensors).
var workFileRE = regexp.MustCompile(`^(config\.json|inputs\.json|block-\d{3,}\.safetensors|block-\d{3,}\.done\.json|hidden-b\d{3,}-s\d{3,}\.bin)$|^\.(config\.json|inputs\.json|block-\d{3,}\.safetensors|block-\d{3,}\.done\.json|hidden-b\d{3,}-s\d{3,}\.bin)\.tmp-\d+$`)

// RemoveWork removes the work directory of a finished run, and its work
// root when that is left empty (local roots only; a gs:// prefix vanishes
// with its last object), logging what it removed with log.Info. It removes
// nothing but an optima work directory: one named by a work key (16 hex
// digits), holding config.json and only files that optima writes there
// (workFileRE). Anything else is left whole with a log.Warn that says why;
// that is not an error, since the run itself succeeded. Other work
// directories left in the root (other configurations or inputs, perhaps
// still to be resumed) are listed with log.Info, not removed. Errors are
// those of listing or removing.
func RemoveWork(ctx context.Context, work prune.Work, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := fileio.Clean(work.Dir)
	if !workKeyRE.MatchString(fileio.Base(dir)) {
		log.Warn("not removing the work directory: not an optima work directory (its name is not a work key)", "dir", dir)
		return nil
	}
	if ok, err := fileio.Exists(ctx, fileio.Join(dir, workConfigFile)); err != nil {
		return fmt.Errorf("remove work directory: %w", err)
	} else if !ok {
		log.Warn("not removing the work directory: not an optima work directory (no config.json)", "dir", dir)
		return nil
	}
	names, err := workEntries(ctx, dir)
	if err != nil {
		return fmt.Errorf("remove work directory: %w", err)
	}
	for _, n := range names {
		if !workFileRE.MatchString(n) {
			log.Warn("not removing the work directory: it holds a file optima did not write", "dir", dir, "file", n)
			return nil
		}
	}
	if err := fileio.RemoveAll(ctx, dir); err != nil {
		return fmt.Errorf("remove work directory: %w", err)
	}
	log.Info("removed work directory", "dir", dir)
	if fileio.IsRemote(dir) {
		return nil
	}
	root := filepath.Dir(dir)
	if os.Remove(root) == nil {
		return nil // it was empty
	}
	var others []string
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if e.IsDir() && workKeyRE.MatchString(e.Name()) {
				if _, err := os.Stat(filepath.Join(root, e.Name(), workConfigFile)); err == nil {
					others = append(others, e.Name())
				}
			}
		}
	}
	if len(others) > 0 {
		log.Info("other work directories remain in the work root (other configurations or inputs; a rerun of their command resumes them, rm -r removes them)", "root", root, "dirs", strings.Join(others, " "))
	}
	return nil
}

// workEntries lists the names in the work directory dir; a subdirectory
// (local) or an object below one (gs://) is listed as "name/".
func workEntries(ctx context.Context, dir string) ([]string, error) {
	if !fileio.IsRemote(dir) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
			if e.IsDir() {
				names[i] += "/"
			}
		}
		return names, nil
	}
	objs, err := fileio.Glob(ctx, dir+"/**")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = strings.TrimPrefix(o, dir+"/")
	}
	return names, nil
}
