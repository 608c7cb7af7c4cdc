// Package metrics exposes the service's Prometheus metrics: requests per listener, method
// and status, and their latency; images by status, bytes stored, uploads in flight,
// refusals by reason and garbage collections.
package metrics

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds the service's metrics.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	domain
}

// New returns a registry with the Go runtime and process collectors and the HTTP metrics.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xloud_http_requests_total",
			Help: "HTTP requests answered, by listener, method and status code.",
		}, []string{"listener", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xloud_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests (to the end of the body), by listener and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"listener", "method"}),
		domain: newDomain(),
	}
	r.reg.MustRegister(r.requests, r.latency, r.refusals, r.gcRuns, r.gcFreed, r.sigWarnings, r.urlUses, r.urlBytes, r.uploading,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Instrument counts and times the requests h answers on listener.
func (r *Registry) Instrument(listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, req)
		method := methodLabel(req.Method)
		r.requests.WithLabelValues(listener, method, strconv.Itoa(sw.code)).Inc()
		r.latency.WithLabelValues(listener, method).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the label's values: clients choose methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status code written. It keeps io.ReaderFrom so blob GETs still
// go out with sendfile.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(s.ResponseWriter, src)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
