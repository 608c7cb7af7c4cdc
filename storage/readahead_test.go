package storage

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"
)

// failWriter takes n bytes, then fails.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("client went away")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestReadAhead: the copy is exact for sizes around the buffer size, a store error and a
// client error end it with that error and the count of bytes written, and its reading
// goroutine ends with it.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 3*aheadBuf+17)
	rand.Read(data)
	before := runtime.NumGoroutine()
	for _, n := range []int{0, 1, aheadBuf - 1, aheadBuf, aheadBuf + 1, len(data)} {
		var out bytes.Buffer
		got, err := readAhead(&out, iotest.HalfReader(bytes.NewReader(data[:n])))
		if err != nil || got != int64(n) || !bytes.Equal(out.Bytes(), data[:n]) {
			t.Errorf("%d bytes: copied %d, %v", n, got, err)
		}
	}
	storeErr := errors.New("store reset the connection")
	r := io.MultiReader(bytes.NewReader(data[:aheadBuf+5]), iotest.ErrReader(storeErr))
	var out bytes.Buffer
	if got, err := readAhead(&out, r); !errors.Is(err, storeErr) || got != aheadBuf+5 {
		t.Errorf("store error: copied %d, %v", got, err)
	}
	if got, err := readAhead(&failWriter{n: aheadBuf + 100}, bytes.NewReader(data)); err == nil || got != aheadBuf+100 {
		t.Errorf("client error: copied %d, %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left running (%d before)", n, before)
	}
}
