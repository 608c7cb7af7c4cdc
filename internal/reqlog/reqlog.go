// Package reqlog gives every request an id, carries who made it through the handlers, and
// writes one access-log line per request, so an operator can follow a request from its
// access line to each event it caused.
package reqlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Header carries the request id on every response (Docker's and most proxies' name); the
// Image API also sends it as X-Openstack-Request-Id, as Glance does.
const Header = "X-Request-Id"

// info is what handlers learn about a request and the access line reports.
type info struct {
	id string
	mu sync.Mutex
	// user and project of the caller, once authenticated.
	user, project string
	// urlNonce names the signed URL a request used (its path is logged redacted).
	urlNonce string
}

type key struct{}

// ID returns the request id of ctx, "" outside a request.
func ID(ctx context.Context) string {
	if in, ok := ctx.Value(key{}).(*info); ok {
		return in.id
	}
	return ""
}

// SetCaller records who made the request in ctx, for its access line.
func SetCaller(ctx context.Context, user, project string) {
	if in, ok := ctx.Value(key{}).(*info); ok {
		in.mu.Lock()
		in.user, in.project = user, project
		in.mu.Unlock()
	}
}

// SetURLNonce records the nonce of the signed URL a request used, for its access line.
func SetURLNonce(ctx context.Context, nonce string) {
	if in, ok := ctx.Value(key{}).(*info); ok {
		in.mu.Lock()
		in.urlNonce = nonce
		in.mu.Unlock()
	}
}

func (in *info) caller() (string, string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.user, in.project
}

// WithID returns ctx carrying a fresh request id (for work outside an HTTP request).
func WithID(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, &info{id: "req-" + uuid.NewString()})
}

// Middleware gives each request an id (in its context and the X-Request-Id response header)
// and, when access is set, logs one line when it is answered.
func Middleware(listener string, access bool, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := &info{id: "req-" + uuid.NewString()}
		w.Header().Set(Header, in.id)
		r = r.WithContext(context.WithValue(r.Context(), key{}, in))
		if !access {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(cw, r)
		user, project := in.caller()
		attrs := []slog.Attr{slog.String("listener", listener), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", cw.code), slog.Int64("bytes", cw.n),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", r.RemoteAddr), slog.String("user", user), slog.String("project", project)}
		in.mu.Lock()
		if in.urlNonce != "" {
			attrs = append(attrs, slog.String("url_nonce", in.urlNonce))
		}
		in.mu.Unlock()
		log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
	})
}

// countingWriter remembers the status and counts the body bytes. It keeps io.ReaderFrom so
// blob GETs still go out with sendfile.
type countingWriter struct {
	http.ResponseWriter
	code        int
	n           int64
	wroteHeader bool
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.wroteHeader && code >= 200 {
		c.code, c.wroteHeader = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.wroteHeader = true
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	c.wroteHeader = true
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(c.ResponseWriter, src)
	}
	c.n += n
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Handler adds the request id of the record's context to every line logged with one, so
// events inside a request (slog.InfoContext and friends) name it.
type Handler struct{ slog.Handler }

// Handle adds request_id when the context has one and the line does not name it already.
func (h Handler) Handle(ctx context.Context, rec slog.Record) error {
	if id := ID(ctx); id != "" && !hasAttr(rec, "request_id") {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func hasAttr(rec slog.Record, key string) bool {
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

// WithAttrs keeps the wrapper.
func (h Handler) WithAttrs(as []slog.Attr) slog.Handler { return Handler{h.Handler.WithAttrs(as)} }

// WithGroup keeps the wrapper.
func (h Handler) WithGroup(name string) slog.Handler { return Handler{h.Handler.WithGroup(name)} }

// Logf adapts a printf-style logger (go-redis's) onto slog, so its lines are JSON too.
type Logf struct {
	Log *slog.Logger
}

// Printf logs the formatted line at WARN: go-redis prints only trouble (pool, reconnects).
func (l Logf) Printf(ctx context.Context, format string, v ...any) {
	l.Log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "redis")
}
