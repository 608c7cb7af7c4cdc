package main

import (
	"io"
	"net/http"
	"time"
)

// idleBodies drops a request whose body stalls: each read of the body must make progress
// within timeout of the last, or the read fails and the server closes the connection. The
// handler sees the error, so a half-received upload chunk is not committed. Unlike a whole
// request timeout, a slow but steady multi-gigabyte upload is never cut.
func idleBodies(h http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			deadline := func(t time.Time) { _ = rc.SetReadDeadline(t) }
			deadline(time.Now().Add(timeout))
			// A copy of the request: the server inspects its own r.Body after the handler
			// (an unread Expect: 100-continue body is not read at all).
			r2 := *r
			r2.Body = &idleBody{ReadCloser: r.Body, timeout: timeout, deadline: deadline}
			r = &r2
		}
		h.ServeHTTP(w, r)
	})
}

// idleBody moves the connection's read deadline forward after every read that made
// progress, and lifts it at the end of the body: the server then watches the connection
// for the client going away, and a deadline passing there would cancel a handler still
// working on what it received.
type idleBody struct {
	io.ReadCloser
	timeout  time.Duration
	deadline func(time.Time)
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.deadline(time.Time{})
	case n > 0:
		b.deadline(time.Now().Add(b.timeout))
	}
	return n, err
}
