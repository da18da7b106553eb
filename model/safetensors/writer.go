package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/optima-llm/optima/model"
	"github.com/optima-llm/optima/model/gguf"
)

// IndexName is the shard index file name transformers reads.
const IndexName = "model.safetensors.index.json"

// SingleName is the file name of an unsharded checkpoint.
const SingleName = "model.safetensors"

// WriteOptions configures the writers.
type WriteOptions struct {
	// DType is the stored element type: F32 (default), F16 or BF16
	// (round-to-nearest-even).
	DType DType
	// Metadata is written as __metadata__; nil writes {"format": "pt"}, the
	// value transformers expects.
	Metadata map[string]string
}

func (o WriteOptions) dtype() (DType, error) {
	switch o.DType {
	case "":
		return F32, nil
	case F32, F16, BF16:
		return o.DType, nil
	}
	return "", fmt.Errorf("safetensors: cannot write dtype %q (supported: F32, F16, BF16)", o.DType)
}

func (o WriteOptions) metadata() map[string]string {
	if o.Metadata == nil {
		return map[string]string{"format": "pt"}
	}
	return o.Metadata
}

// encodeTensor appends t's values in dtype dt to dst.
func encodeTensor(dst []byte, data []float32, dt DType) []byte {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for _, v := range data {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range data {
			dst = le.AppendUint16(dst, gguf.Float32ToFloat16(v))
		}
	case BF16:
		for _, v := range data {
			dst = le.AppendUint16(dst, gguf.Float32ToBFloat16(v))
		}
	}
	return dst
}

// header encodes the JSON header, __metadata__ first and tensors in the
// given order, padded with spaces so that 8 + len is a multiple of 8.
func header(meta map[string]string, infos []TensorInfo) ([]byte, error) {
	buf := []byte{'{'}
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		buf = append(append(buf, `"__metadata__":`...), m...)
	}
	for i, ti := range infos {
		if i > 0 || len(meta) > 0 {
			buf = append(buf, ',')
		}
		k, _ := json.Marshal(ti.Name)
		buf = append(buf, k...)
		buf = append(buf, `:{"dtype":"`...)
		buf = append(buf, ti.DType...)
		buf = append(buf, `","shape":[`...)
		for j, d := range ti.Shape {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(d), 10)
		}
		buf = append(buf, `],"data_offsets":[`...)
		buf = strconv.AppendInt(buf, ti.Begin, 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, ti.End, 10)
		buf = append(buf, "]}"...)
	}
	buf = append(buf, '}')
	for (8+len(buf))%8 != 0 {
		buf = append(buf, ' ')
	}
	return buf, nil
}

func checkTensor(t *model.Tensor) error {
	if t == nil {
		return fmt.Errorf("safetensors: nil tensor")
	}
	if t.Name == "" || t.Name == "__metadata__" {
		return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: negative shape %v", t.Name, t.Shape)
		}
	}
	if t.Numel() != len(t.Data) {
		return fmt.Errorf("safetensors: tensor %q: shape %v needs %d values, has %d", t.Name, t.Shape, t.Numel(), len(t.Data))
	}
	return nil
}

// WriteFile writes tensors, sorted by name, to path atomically (a temporary
// file in the same directory, fsync, rename). Tensor names must be unique
// and len(Data) must match Shape; otherwise, or on an I/O error, it returns
// an error and leaves path untouched.
func WriteFile(path string, tensors []*model.Tensor, opts WriteOptions) error {
	return WriteFileTee(path, tensors, opts, nil)
}

// WriteFileTee is WriteFile that also writes every byte of the file, in
// order, to tee (a hash.Hash, say: a checksum of the file costs no read
// back); a nil tee is WriteFile. An error from tee fails the write. On
// error tee may have received part of the file.
func WriteFileTee(path string, tensors []*model.Tensor, opts WriteOptions, tee io.Writer) error {
	dt, err := opts.dtype()
	if err != nil {
		return err
	}
	sorted := append([]*model.Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	infos := make([]TensorInfo, len(sorted))
	var off int64
	for i, t := range sorted {
		if err := checkTensor(t); err != nil {
			return err
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: duplicate tensor %q", t.Name)
		}
		n := int64(t.Numel()) * dt.Size()
		infos[i] = TensorInfo{Name: t.Name, DType: dt, Shape: t.Shape, Begin: off, End: off + n}
		off += n
	}
	hdr, err := header(opts.metadata(), infos)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return atomicWrite(path, func(w io.Writer) error {
		if tee != nil {
			w = io.MultiWriter(w, tee)
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		var lb [8]byte
		binary.LittleEndian.PutUint64(lb[:], uint64(len(hdr)))
		bw.Write(lb[:])
		bw.Write(hdr)
		var buf []byte
		for _, t := range sorted {
			buf = encodeTensor(buf[:0], t.Data, dt)
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}

// atomicWrite creates a temporary file next to path, lets fill write it,
// fsyncs and renames it to path. On error the temporary file is removed.
func atomicWrite(path string, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := fill(tmp); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable where the platform allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// LoadFunc loads one tensor by name.
type LoadFunc func(name string) (*model.Tensor, error)

// WriteSharded writes in-memory tensors into dir like WriteShardedFunc.
func WriteSharded(dir string, tensors []*model.Tensor, maxShardBytes int64, opts WriteOptions) ([]string, error) {
	byName := make(map[string]*model.Tensor, len(tensors))
	names := make([]string, 0, len(tensors))
	for _, t := range tensors {
		if t == nil {
			return nil, fmt.Errorf("safetensors: nil tensor")
		}
		byName[t.Name] = t
		names = append(names, t.Name)
	}
	return WriteShardedFunc(dir, names, func(n string) (*model.Tensor, error) { return byName[n], nil }, maxShardBytes, opts)
}

// WriteShardedFunc loads the named tensors one at a time, in sorted order,
// and writes them into the existing directory dir: model.safetensors when
// they fit in maxShardBytes (counting tensor data only), otherwise
// model-0000i-of-0000N.safetensors shards of at most maxShardBytes each (a
// tensor larger than the limit gets a shard of its own) plus
// model.safetensors.index.json mapping every tensor to its shard, as
// transformers writes them. maxShardBytes <= 0 means no limit. Each file is
// written atomically and the index last; files already in dir are not
// removed. It holds one tensor in memory at a time and returns the names of
// the files written (relative to dir). Errors name the tensor or file.
func WriteShardedFunc(dir string, names []string, load LoadFunc, maxShardBytes int64, opts WriteOptions) (files []string, err error) {
	dt, err := opts.dtype()
	if err != nil {
		return nil, err
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, fmt.Errorf("safetensors: duplicate tensor %q", sorted[i])
		}
	}
	var shards []*shard
	defer func() {
		if err != nil {
			for _, s := range shards {
				s.abort()
			}
		}
	}()
	var cur *shard
	var total int64
	var buf []byte
	for _, name := range sorted {
		t, err := load(name)
		if err != nil {
			return nil, fmt.Errorf("safetensors: load %q: %w", name, err)
		}
		if t == nil || t.Name != name {
			return nil, fmt.Errorf("safetensors: load %q returned another tensor", name)
		}
		if err := checkTensor(t); err != nil {
			return nil, err
		}
		n := int64(t.Numel()) * dt.Size()
		if cur == nil || (maxShardBytes > 0 && cur.size > 0 && cur.size+n > maxShardBytes) {
			if cur, err = newShard(dir); err != nil {
				return nil, err
			}
			shards = append(shards, cur)
		}
		buf = encodeTensor(buf[:0], t.Data, dt)
		if err := cur.add(TensorInfo{Name: name, DType: dt, Shape: append([]int(nil), t.Shape...)}, buf); err != nil {
			return nil, err
		}
		total += n
	}
	if len(shards) == 0 {
		if cur, err = newShard(dir); err != nil {
			return nil, err
		}
		shards = append(shards, cur)
	}
	meta := opts.metadata()
	if len(shards) == 1 {
		if err := shards[0].finish(filepath.Join(dir, SingleName), meta); err != nil {
			return nil, err
		}
		return []string{SingleName}, nil
	}
	weightMap := map[string]string{}
	for i, s := range shards {
		fn := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := s.finish(filepath.Join(dir, fn), meta); err != nil {
			return nil, err
		}
		for _, ti := range s.infos {
			weightMap[ti.Name] = fn
		}
		files = append(files, fn)
	}
	idx, err := json.MarshalIndent(map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := atomicWrite(filepath.Join(dir, IndexName), func(w io.Writer) error {
		_, err := w.Write(append(idx, '\n'))
		return err
	}); err != nil {
		return nil, err
	}
	return append(files, IndexName), nil
}

// shard collects tensor data in a temporary file until its header is known.
type shard struct {
	data  *os.File
	bw    *bufio.Writer
	infos []TensorInfo
	size  int64
}

func newShard(dir string) (*shard, error) {
	f, err := os.CreateTemp(dir, ".shard-data.tmp-*")
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return &shard{data: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *shard) add(ti TensorInfo, b []byte) error {
	ti.Begin, ti.End = s.size, s.size+int64(len(b))
	if _, err := s.bw.Write(b); err != nil {
		return fmt.Errorf("safetensors: write %q: %w", ti.Name, err)
	}
	s.infos = append(s.infos, ti)
	s.size = ti.End
	return nil
}

// finish writes header + data to path atomically and removes the data file.
func (s *shard) finish(path string, meta map[string]string) error {
	defer s.abort()
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	hdr, err := header(meta, s.infos)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return atomicWrite(path, func(w io.Writer) error {
		var lb [8]byte
		binary.LittleEndian.PutUint64(lb[:], uint64(len(hdr)))
		if _, err := w.Write(append(lb[:], hdr...)); err != nil {
			return err
		}
		if _, err := s.data.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, s.data)
		return err
	})
}

// abort removes the data file; safe to call twice.
func (s *shard) abort() {
	if s.data != nil {
		s.data.Close()
		os.Remove(s.data.Name())
		s.data = nil
	}
}
