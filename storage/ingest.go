package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Ingest tuning. Buffers rotate between the reader, the hasher and the writer, so memory per
// upload is bufCount*bufSize whatever the blob size.
const (
	bufSize  = 1 << 20
	bufCount = 4
	// writeBehind is how much is written before the kernel is asked to start writing it
	// back, so the fsync at commit has little left to do.
	writeBehind = 8 << 20
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// chunk is one buffer in flight; it goes back to the pool when both the hasher and the writer
// are done with it.
type chunk struct {
	buf  *[]byte
	n    int
	refs sync.WaitGroup
}

// ingest appends everything src yields to f (at its current offset, which is start) while
// feeding the same bytes to every sink (hashes, inspectors). The write and each sink run in
// their own goroutine over a rotation of buffers; the kernel is told to write back behind us
// as we go. Sinks must not fail (hashes never do). It stops after max
// bytes (max < 0: no limit) and reports ErrTooLarge if src had more. It returns the number of
// bytes written; on error the caller truncates f back to start.
func ingest(f *os.File, start int64, src io.Reader, max int64, sinks ...io.Writer) (int64, error) {
	sinkChs := make([]chan *chunk, len(sinks))
	writeCh := make(chan *chunk, bufCount)
	var hashWG, writeWG sync.WaitGroup
	var writeErr error
	var written int64

	for i, sink := range sinks {
		ch := make(chan *chunk, bufCount)
		sinkChs[i] = ch
		hashWG.Add(1)
		go func() {
			defer hashWG.Done()
			for c := range ch {
				sink.Write((*c.buf)[:c.n])
				c.refs.Done()
			}
		}()
	}
	writeWG.Add(1)
	go func() {
		defer writeWG.Done()
		synced := start
		for c := range writeCh {
			if writeErr == nil {
				_, writeErr = f.Write((*c.buf)[:c.n])
				written += int64(c.n)
				if pos := start + written; writeErr == nil && pos-synced >= writeBehind {
					startWriteback(f, synced, pos-synced)
					synced = pos
				}
			}
			c.refs.Done()
		}
	}()

	slots := make(chan struct{}, bufCount)
	var total int64
	var readErr error
	for readErr == nil {
		slots <- struct{}{}
		c := &chunk{buf: bufPool.Get().(*[]byte)}
		c.n, readErr = fill(src, *c.buf)
		if max >= 0 && total+int64(c.n) > max {
			c.n = int(max - total)
			readErr = ErrTooLarge
		}
		total += int64(c.n)
		if c.n == 0 {
			bufPool.Put(c.buf)
			<-slots
			continue
		}
		c.refs.Add(1 + len(sinks))
		for _, ch := range sinkChs {
			ch <- c
		}
		writeCh <- c
		go func(c *chunk) {
			c.refs.Wait()
			bufPool.Put(c.buf)
			<-slots
		}(c)
	}
	for _, ch := range sinkChs {
		close(ch)
	}
	close(writeCh)
	hashWG.Wait()
	writeWG.Wait()
	switch {
	case errors.Is(readErr, ErrTooLarge):
		return written, readErr
	case !errors.Is(readErr, io.EOF):
		return written, fmt.Errorf("%w: %v", ErrIncomplete, readErr)
	}
	return written, writeErr
}

// fill reads into buf until it is full or src ends. Unlike io.ReadFull it keeps src's own
// error, so a body that breaks off (io.ErrUnexpectedEOF from net/http) is not mistaken for
// a clean end.
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
