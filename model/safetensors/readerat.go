package safetensors

import "io"

// SizedReaderAt is a random-access file of known size, such as an *os.File
// wrapper or a ranged reader over an object in cloud storage.
type SizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// NewFile parses the safetensors file readable through r (Parse with
// r.Size()) and keeps r for tensor reads: every Load is one ReadAt of
// exactly that tensor's bytes, so a ranged reader over a remote object
// fetches only the tensors asked for. If r is also an io.Closer, Close
// closes it. name is used in errors, which wrap ErrFormat for a malformed
// header.
func NewFile(r SizedReaderAt, name string) (*File, error) {
	f, err := Parse(r, r.Size(), name)
	if err != nil {
		return nil, err
	}
	if c, ok := r.(io.Closer); ok {
		f.closer = c
	}
	return f, nil
}
