package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources answer the domain gauges at scrape time, so they hold for every server sharing a
// store (Redis) and survive restarts.
type Sources struct {
	// Images counts images by status.
	Images func(ctx context.Context) (map[string]int, error)
	// Store reports the bytes of committed blobs and the open upload sessions.
	Store func(ctx context.Context) (bytes, uploads int64, err error)
	// GCQueue reports the blobs waiting in the GC review queue (due or not).
	GCQueue func(ctx context.Context) (int64, error)
}

// domain are the counters the service's events feed.
type domain struct {
	refusals *prometheus.CounterVec
	gcRuns   prometheus.Counter
	gcFreed  prometheus.Counter
	// sigWarnings counts pulls a warn signing policy let through unverified.
	sigWarnings *prometheus.CounterVec
	// Signed URLs, by image id (the blob digest for URLs issued by the registry): one label
	// value per image, not per URL, which would grow without bound.
	urlUses  *prometheus.CounterVec
	urlBytes *prometheus.CounterVec
	// uploading counts the upload requests (POST, PATCH, PUT of a blob upload) this node is
	// serving right now: per node, unlike the sessions, which every node shares.
	uploading prometheus.Gauge
}

func newDomain() domain {
	return domain{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xloud_refusals_total",
			Help: "Requests refused, by API (registry, image) and reason (the OCI error code, or the Image API status).",
		}, []string{"api", "reason"}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xloud_gc_runs_total", Help: "Garbage collections run (not dry runs)."}),
		gcFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xloud_gc_freed_bytes_total", Help: "Bytes of blobs garbage collection removed."}),
		sigWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xloud_signature_warnings_total",
			Help: "Pulls and downloads of content without a verified signature that a warn signing policy let through, by API.",
		}, []string{"api"}),
		urlUses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xloud_signed_url_requests_total",
			Help: "Requests served through signed URLs, by image id (or blob digest when issued by the registry)."}, []string{"image"}),
		urlBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xloud_signed_url_bytes_total",
			Help: "Body bytes served through signed URLs, by image id (or blob digest when issued by the registry)."}, []string{"image"}),
		uploading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xloud_node_upload_requests_in_flight",
			Help: "Blob upload requests (POST, PATCH, PUT under /blobs/uploads/) this node is serving now."}),
	}
}

// Refused counts a refusal; reason must come from a closed set (codes, statuses). A nil
// Registry counts nothing, so handlers built without metrics need no checks.
func (r *Registry) Refused(api, reason string) {
	if r != nil {
		r.refusals.WithLabelValues(api, reason).Inc()
	}
}

// SignatureWarning counts a pull a warn signing policy let through unverified.
func (r *Registry) SignatureWarning(api string) {
	if r != nil {
		r.sigWarnings.WithLabelValues(api).Inc()
	}
}

// GCRun counts a garbage collection and the bytes it freed.
func (r *Registry) GCRun(freed int64) {
	if r != nil {
		r.gcRuns.Inc()
		r.gcFreed.Add(float64(freed))
	}
}

// Uploading counts an upload request this node serves until the returned function is called.
func (r *Registry) Uploading() (done func()) {
	if r == nil {
		return func() {}
	}
	r.uploading.Inc()
	return r.uploading.Dec
}

// SignedURLUse counts one request served through a signed URL for image.
func (r *Registry) SignedURLUse(image string) {
	if r != nil {
		r.urlUses.WithLabelValues(image).Inc()
	}
}

// CountImageBytes returns w counting the body bytes it sends into the signed URL bytes of
// image; it keeps io.ReaderFrom, so file bodies still go out with sendfile.
func (r *Registry) CountImageBytes(w http.ResponseWriter, image string) http.ResponseWriter {
	if r == nil {
		return w
	}
	return &bytesWriter{ResponseWriter: w, c: r.urlBytes.WithLabelValues(image)}
}

type bytesWriter struct {
	http.ResponseWriter
	c prometheus.Counter
}

func (b *bytesWriter) Write(p []byte) (int, error) {
	n, err := b.ResponseWriter.Write(p)
	b.c.Add(float64(n))
	return n, err
}

func (b *bytesWriter) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(b.ResponseWriter, src) // the inner writer's ReadFrom: sendfile for files
	b.c.Add(float64(n))
	return n, err
}

func (b *bytesWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// Observe adds the gauges src answers.
func (r *Registry) Observe(src Sources) {
	r.reg.MustRegister(&gauges{src: src})
}

var (
	imagesDesc = prometheus.NewDesc("xloud_images", "Images by status (deleted ones not counted).", []string{"status"}, nil)
	bytesDesc  = prometheus.NewDesc("xloud_stored_bytes", "Bytes of committed blobs, by store (each blob counted once).", []string{"store"}, nil)
	uploadDesc = prometheus.NewDesc("xloud_uploads_in_flight", "Open blob upload sessions.", nil, nil)
	gcQueue    = prometheus.NewDesc("xloud_gc_queue_length", "Entries in the garbage collection review queue, due or not (shared by every node; a blob queued twice counts twice).", nil, nil)
)

// gauges reads its values from the sources at each scrape.
type gauges struct{ src Sources }

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- imagesDesc
	ch <- bytesDesc
	ch <- uploadDesc
	ch <- gcQueue
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if g.src.Images != nil {
		counts, err := g.src.Images(ctx)
		if err != nil {
			slog.Warn("metrics: count images", "err", err)
		}
		for status, n := range counts {
			ch <- prometheus.MustNewConstMetric(imagesDesc, prometheus.GaugeValue, float64(n), status)
		}
	}
	if g.src.GCQueue != nil {
		if n, err := g.src.GCQueue(ctx); err != nil {
			slog.Warn("metrics: gc queue", "err", err)
		} else {
			ch <- prometheus.MustNewConstMetric(gcQueue, prometheus.GaugeValue, float64(n))
		}
	}
	if g.src.Store != nil {
		bytes, uploads, err := g.src.Store(ctx)
		if err != nil {
			slog.Warn("metrics: store usage", "err", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(bytes), "filesystem")
		ch <- prometheus.MustNewConstMetric(uploadDesc, prometheus.GaugeValue, float64(uploads))
	}
}
