package diskformat

import (
	"fmt"
	"io"
	"os"
)

// chunkSize is the read size of the helpers below.
const chunkSize = 256 << 10

// Inspect reads r to its end through an Inspector and returns the verdict.
func Inspect(r io.Reader) (Report, error) {
	in := NewInspector()
	if _, err := io.CopyBuffer(in, r, make([]byte, chunkSize)); err != nil {
		return Report{}, fmt.Errorf("read image: %w", err)
	}
	return in.Report(), nil
}

// InspectReaderAt inspects the size bytes of r. It writes them through the
// same Inspector as a stream but, since it can seek, skips the bytes no
// format needs (everything between the headers and the tail), so that a
// large file costs a few reads.
func InspectReaderAt(r io.ReaderAt, size int64) (Report, error) {
	in := NewInspector()
	buf := make([]byte, chunkSize)
	for in.n < size {
		if k := in.skippable(size); k > 0 {
			in.skip(k)
			continue
		}
		n := int(min(int64(len(buf)), size-in.n))
		if _, err := r.ReadAt(buf[:n], in.n); err != nil {
			return Report{}, fmt.Errorf("read image at %d: %w", in.n, err)
		}
		in.Write(buf[:n])
	}
	return in.Report(), nil
}

// InspectFile inspects the file at path: a regular file or a block device
// through InspectReaderAt, anything else (a pipe) as a stream.
func InspectFile(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err // names the operation and the path already
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return Inspect(f)
	}
	return InspectReaderAt(f, size)
}
