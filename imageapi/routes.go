// Package imageapi is the Image API door: OpenStack Glance's Image API v2 over HTTP, wire
// compatible with the openstack and glance CLIs. Handlers parse the request into typed
// values, call the catalog, and write the answer; errors.go turns every error into Glance's
// status and error body. Section numbers (§1.x) refer to shared/reference/glance-api.md.
package imageapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/metrics"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/metadefs"
)

// Options configure the Image API.
type Options struct {
	// Ready, when set, is asked before each request; its error (meta.ErrUnavailable while
	// the metadata store does not answer) is the answer.
	Ready func(context.Context) error
	// PublicURL is the base URL the version documents and Location headers advertise; empty:
	// the request's own scheme and host (and the prefix the API is mounted under).
	PublicURL string
	// Web fetches web-download imports; nil: catalog.DefaultWebDownloader (http and https on
	// ports 80 and 443 to public addresses, as Glance's default import filter).
	Web *catalog.WebDownloader
	// RegistryHost is the host (and port) clients reach the registry at, shown in each
	// image's xloud_oci_reference: the host of --public-url. Empty: the host the request came
	// to with RegistryPort, the port the registry listens on; both empty: no host.
	RegistryHost string
	RegistryPort string
	// IdentityURL is the Keystone v3 URL, for a request, whose service catalog glance-download
	// imports ask for other regions' Image APIs; nil: this server's own identity API under
	// the API's base URL.
	IdentityURL func(*http.Request) string
	// Signer signs the URLs of POST /v2/images/{id}/actions/url; RegistryURL is the base of
	// the registry port, where they are served. Either nil: signed URLs are not offered.
	Signer      *auth.URLSigner
	RegistryURL func(*http.Request) string
	// Log receives faults and failed background imports; nil: slog.Default().
	Log *slog.Logger
	// Metrics counts refusals; nil: not counted.
	Metrics *metrics.Registry
	// Metadefs serves the metadata definitions API (metadefs.go); nil: not served.
	Metadefs *metadefs.Store
}

// API serves the Image API v2.
type API struct {
	cat   *catalog.Catalog
	authn *auth.Authenticator
	opt   Options
	mux   *http.ServeMux
	// allow lists each route path's methods in the order routes lists them: the Allow
	// header of a 405, as Glance's router gives it.
	allow map[string][]string
}

// handlerFunc serves one route for an authenticated caller and returns its error instead of
// writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, pr auth.Principal) error

// New returns the Image API over cat. Every /v2 request but the schemas needs a Keystone
// token that authn accepts; with authn nil (--auth none) every caller acts as an admin
// without a project, as Glance's noauth pipeline does.
func New(cat *catalog.Catalog, authn *auth.Authenticator, opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &API{cat: cat, authn: authn, opt: opts, mux: http.NewServeMux(), allow: map[string][]string{}}
	a.routes()
	return a
}

// routes lists every endpoint (§1.2). GET routes answer HEAD too; paths are matched after
// normalize (no trailing slash, the version as v2).
func (a *API) routes() {
	a.public("GET /", a.getVersionsRoot)     // §1.1, 300
	a.public("GET /versions", a.getVersions) // §1.1, 200
	a.public("GET /v2", a.getVersion)
	a.public("GET /v2/schemas/image", a.getImageSchema)
	a.public("GET /v2/schemas/images", a.getImagesSchema)
	a.public("GET /v2/schemas/member", a.getMemberSchema)
	a.public("GET /v2/schemas/members", a.getMembersSchema)
	a.public("GET /v2/schemas/task", a.getTaskSchema)
	a.public("GET /v2/schemas/tasks", a.getTasksSchema)
	a.authed("GET /v2/images", a.listImages)                               // §1.6
	a.authed("POST /v2/images", a.createImage)                             // §1.4
	a.authed("GET /v2/images/{id}", a.showImage)                           // §1.3
	a.authed("PATCH /v2/images/{id}", a.updateImage)                       // §1.5
	a.authed("DELETE /v2/images/{id}", a.deleteImage)                      // §1.9
	a.authed("POST /v2/images/{id}/actions/deactivate", a.deactivateImage) // §1.2
	a.authed("POST /v2/images/{id}/actions/reactivate", a.reactivateImage) // §1.2
	a.authed("POST /v2/images/{id}/actions/url", a.signedURL)              // extension: url.go
	a.authed("PUT /v2/images/{id}/file", a.uploadImageData)                // §1.7
	a.authed("GET /v2/images/{id}/file", a.downloadImageData)              // §1.7
	a.authed("PUT /v2/images/{id}/stage", a.stageImageData)                // §1.7
	a.authed("POST /v2/images/{id}/import", a.importImage)                 // §1.8
	a.authed("PUT /v2/images/{id}/tags/{tag}", a.addTag)                   // §1.2
	a.authed("DELETE /v2/images/{id}/tags/{tag}", a.deleteTag)             // §1.2
	a.authed("GET /v2/images/{id}/members", a.listMembers)                 // §2.2
	a.authed("POST /v2/images/{id}/members", a.addMember)                  // §2.2
	a.authed("GET /v2/images/{id}/members/{member}", a.showMember)         // §2.2
	a.authed("PUT /v2/images/{id}/members/{member}", a.updateMember)       // §2.2
	a.authed("DELETE /v2/images/{id}/members/{member}", a.removeMember)    // §2.2
	a.authed("GET /v2/info/import", a.getImportInfo)                       // §1.8
	a.authed("GET /v2/info/stores", a.getStoresInfo)                       // §5.6
	a.authed("GET /v2/info/stores/detail", a.getStoresDetail)              // §5.6, API 2.15
	a.authed("DELETE /v2/stores/{store}/{id}", a.deleteFromStore)          // §5.6, API 2.10
	a.authed("GET /v2/info/usage", a.getUsage)                             // §5.3
	a.authed("GET /v2/images/{id}/tasks", a.listImageTasks)                // §1.2, API 2.12
	a.authed("POST /v2/tasks", a.createTask)                               // tasks.go
	a.authed("GET /v2/tasks", a.listTasks)                                 // tasks.go
	a.authed("GET /v2/tasks/{task}", a.showTask)                           // tasks.go
	a.authed("DELETE /v2/tasks/{task}", a.deleteTask)                      // tasks.go
	a.authed("GET /v2/cache", a.listCache)                                 // §5.2, API 2.14
	a.authed("DELETE /v2/cache", a.clearCache)                             // §5.2
	a.authed("PUT /v2/cache/{id}", a.queueCache)                           // §5.2, 202 since 2.16
	a.authed("DELETE /v2/cache/{id}", a.deleteCache)                       // §5.2
	if a.opt.Metadefs != nil {
		a.metadefRoutes() // glance-next.md §2.1
	}
	a.authed("GET /v2/images/{id}/signatures", a.listSignatures) // Xloud: signatures found and their verdicts
	a.authed("GET /v2/xloud/projects/{project_id}/signing-policy", a.getSigningPolicy)
	a.authed("PUT /v2/xloud/projects/{project_id}/signing-policy", a.putSigningPolicy)
	a.authed("DELETE /v2/xloud/projects/{project_id}/signing-policy", a.deleteSigningPolicy)
}

// public adds a route served without a token (versions, schemas).
func (a *API) public(pattern string, h handlerFunc) { a.handle(pattern, false, h) }

// authed adds a route that needs a Keystone token (or --auth none).
func (a *API) authed(pattern string, h handlerFunc) { a.handle(pattern, true, h) }

func (a *API) handle(pattern string, authed bool, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	a.allow[path] = append(a.allow[path], method)
	if path == "/" {
		pattern = method + " /{$}" // the root only, not every path
	}
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.URL = r.Context().Value(requestURL{}).(*url.URL) // as sent: mountPrefix reads it
		// Image ids are UUIDs in any case, as Glance on MySQL finds them.
		if id := strings.ToLower(r.PathValue("id")); catalog.ValidID(id) {
			r.SetPathValue("id", id)
		}
		pr := noauthPrincipal
		if authed {
			var err error
			if pr, err = a.authenticate(r); err != nil {
				a.writeError(w, r, err)
				return
			}
			reqlog.SetCaller(r.Context(), pr.UserName, pr.ProjectID)
		}
		if err := h(w, r, pr); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// requestURL is the context key of the URL as the request came, before normalize.
type requestURL struct{}

// ServeHTTP tags the response with a request id, answers unknown API versions with the
// versions document, and routes the normalized path; a path no route takes is Glance's 404,
// a method the path does not take its 405 with Allow.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = withRequestID(r)
	w.Header().Set("X-Openstack-Request-Id", reqlog.ID(r.Context()))
	if a.opt.Ready != nil {
		if err := a.opt.Ready(r.Context()); err != nil {
			a.writeError(w, r, err) // nothing can be answered right without the store
			return
		}
	}
	segs, ok := pathSegments(r)
	if !ok || slices.Contains(segs, "") { // no route has an empty segment ("//")
		a.writeError(w, r, errorf(http.StatusNotFound, "The resource could not be found."))
		return
	}
	if len(segs) > 0 && versionRE.MatchString(segs[0]) {
		if !a.supportedVersion(segs[0]) {
			a.getVersionsRoot(w, r, auth.Principal{})
			return
		}
		segs[0] = "v2"
	}
	nr := r.WithContext(context.WithValue(r.Context(), requestURL{}, r.URL))
	if len(segs) > 0 && strings.HasSuffix(r.URL.EscapedPath(), "/") {
		// A trailing slash after a collection names its empty member ("GET /v2/images/" is
		// a show of id ""): Glance finds no such resource, so neither do we.
		nr.URL = normalize(r.URL, append(segs[:len(segs):len(segs)], "x"))
		if _, pattern := a.mux.Handler(nr); pattern != "" {
			a.writeError(w, r, errorf(http.StatusNotFound, "The resource could not be found."))
			return
		}
	}
	nr.URL = normalize(r.URL, segs)
	if _, pattern := a.mux.Handler(nr); pattern != "" {
		a.mux.ServeHTTP(w, nr)
		return
	}
	if allowed := a.allowed(nr); len(allowed) > 0 {
		a.writeError(w, r, errorf(http.StatusMethodNotAllowed, "The method %s is not allowed for this resource.", r.Method).
			withHeader("Allow", strings.Join(allowed, ", ")))
		return
	}
	a.writeError(w, r, errorf(http.StatusNotFound, "The resource could not be found."))
}

// allowed is the methods of the route whose path r's path matches, if any.
func (a *API) allowed(r *http.Request) []string {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" {
			_, path, _ := strings.Cut(pattern, " ")
			if path == "/{$}" {
				path = "/"
			}
			return a.allow[path]
		}
	}
	return nil
}

// normalize is u with the path made of segs, escaped so that the mux neither cleans nor
// splits them: "." and ".." stay segments (ids that find no image), an escaped slash stays
// in its segment.
func normalize(u *url.URL, segs []string) *url.URL {
	out := *u
	path, raw := make([]string, len(segs)), make([]string, len(segs))
	for i, s := range segs {
		path[i], raw[i] = s, url.PathEscape(s)
		if s == "." || s == ".." {
			raw[i] = strings.ReplaceAll(s, ".", "%2E")
		}
	}
	out.Path, out.RawPath = "/"+strings.Join(path, "/"), "/"+strings.Join(raw, "/")
	return &out
}

// versionRE matches a version path segment: v2, v2.15, v1 …
var versionRE = regexp.MustCompile(`^v\d+(\.\d+)?$`)

// pathSegments splits the request path into unescaped segments (a trailing slash is
// ignored).
func pathSegments(r *http.Request) ([]string, bool) {
	raw := splitPath(r.URL.EscapedPath())
	out := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		out[i] = u
	}
	return out, true
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// noauthPrincipal is every caller with --auth none: an admin without a project.
var noauthPrincipal = auth.Principal{Admin: true, UserID: "noauth", UserName: "noauth"}

// authenticate accepts a Keystone token (X-Auth-Token, or a bearer token that is one); no
// token, a bad one, or other credentials are 401.
func (a *API) authenticate(r *http.Request) (auth.Principal, error) {
	if a.authn == nil {
		return noauthPrincipal, nil
	}
	res, err := a.authn.FromRequest(r)
	if err != nil {
		return auth.Principal{}, err
	}
	if res.Kind != auth.CredKeystoneToken {
		return auth.Principal{}, errUnauthenticated
	}
	return res.Principal, nil
}

// baseURL is the URL the API is reached at: Options.PublicURL, or the request's scheme and
// host followed by the prefix the handler is mounted under (e.g. /image on the registry
// port).
func (a *API) baseURL(r *http.Request) string {
	if a.opt.PublicURL != "" {
		return strings.TrimRight(a.opt.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + mountPrefix(r)
}

// registryHost is the registry's host for references shown to this request's client.
func (a *API) registryHost(r *http.Request) string {
	if a.opt.RegistryHost != "" || a.opt.RegistryPort == "" {
		return a.opt.RegistryHost
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = strings.Trim(r.Host, "[]") // no port in the Host header
	}
	return net.JoinHostPort(host, a.opt.RegistryPort)
}

// mountPrefix is what a StripPrefix in front of the API removed from the path.
func mountPrefix(r *http.Request) string {
	orig, _, _ := strings.Cut(r.RequestURI, "?")
	if u, err := url.ParseRequestURI(orig); err == nil && u.Path != "" {
		orig = u.EscapedPath()
	}
	cur := r.URL.EscapedPath()
	if cur != "" && strings.HasSuffix(orig, cur) {
		return strings.TrimRight(orig[:len(orig)-len(cur)], "/")
	}
	return ""
}

// withRequestID keeps the id the server gave r (the one its access line and events carry),
// or gives it one when the API is served on its own.
func withRequestID(r *http.Request) *http.Request {
	if reqlog.ID(r.Context()) != "" {
		return r
	}
	return r.WithContext(reqlog.WithID(r.Context()))
}
