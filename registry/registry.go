package registry

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/storage"
)

// Options configure a Registry.
type Options struct {
	// PublicURL, when set, makes Location headers absolute under it.
	PublicURL string
	// Ready, when set, is asked before each request; its error (meta.ErrUnavailable while
	// the metadata store does not answer) is the answer.
	Ready func(context.Context) error
	// MaxManifestSize bounds manifest bodies (413 above it); 0 means DefaultMaxManifestSize.
	MaxManifestSize int64
	// ManifestBudget bounds the manifest bytes held in memory at once across all requests,
	// counting each body twice (received and parsed); 0 means DefaultManifestBudget. A request waits up to ManifestWait (0: 5 s) for its
	// share, then is TOOMANYREQUESTS.
	ManifestBudget int64
	ManifestWait   time.Duration
	// SparseManifests accepts image manifests whose blobs are not in the repository (as a
	// partial mirror holds them); off, such a push is MANIFEST_BLOB_UNKNOWN.
	SparseManifests bool
	// Access authenticates and authorizes requests; nil serves everyone (--auth none).
	Access *Access
	// Catalog refines reads and deletes of image content; nil: plain registry.
	Catalog Catalog
	// Log receives refusals, faults and events; nil: slog.Default().
	Log *slog.Logger
	// Signer signs and verifies signed blob URLs; nil: none are issued or served.
	Signer *auth.URLSigner
	// Metrics counts refusals; nil: not counted.
	Metrics *metrics.Registry
}

// DefaultMaxManifestSize is well above the spec's 4 MiB floor and the conformance suite's
// ~3.9 MB manifest.
const DefaultMaxManifestSize = 32 << 20

// DefaultManifestBudget holds one of the largest manifests, or many usual ones, at once.
const DefaultManifestBudget = 64 << 20

// Registry serves the Registry API from a Store.
type Registry struct {
	store          *storage.Store
	opt            Options
	routes         map[kind]map[string]handlerFunc
	manifestBudget *byteBudget
}

// New returns the Registry API handler over store.
func New(store *storage.Store, opt Options) *Registry {
	if opt.MaxManifestSize <= 0 {
		opt.MaxManifestSize = DefaultMaxManifestSize
	}
	if opt.ManifestBudget <= 0 {
		opt.ManifestBudget = DefaultManifestBudget
	}
	if opt.ManifestWait <= 0 {
		opt.ManifestWait = 5 * time.Second
	}
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	reg := &Registry{store: store, opt: opt, manifestBudget: newByteBudget(opt.ManifestBudget)}
	reg.routes = reg.handlers()
	return reg
}

// log is where the registry's lines go.
func (reg *Registry) log() *slog.Logger {
	if reg.opt.Log != nil {
		return reg.opt.Log
	}
	return slog.Default()
}

// event logs a change the request made at INFO, with its request id and caller.
func (reg *Registry) event(r *http.Request, msg string, attrs ...any) {
	user := ""
	if a, ok := auth.FromContext(r.Context()); ok {
		user = a.Principal.UserName
	}
	reg.log().InfoContext(r.Context(), msg, append(attrs, "user", user, "request_id", reqlog.ID(r.Context()))...)
}

// location makes a Location header value for path.
func (reg *Registry) location(path string) string { return reg.opt.PublicURL + path }

// getBase answers the version check (end-1).
func (reg *Registry) getBase(w http.ResponseWriter, r *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte("{}"))
	}
	return nil
}

// zeroTime makes ServeContent skip Last-Modified handling; blobs are immutable.
var zeroTime time.Time
