// Package imageapi is the Image API door: OpenStack Glance's Image API v2 over HTTP, wire
// compatible with the openstack and glance CLIs. Handlers parse the request into typed
// values, call the catalog, and write the answer; errors.go turns every error into Glance's
// status and error body. Section numbers (§1.x) refer to shared/reference/glance-api.md.
package imageapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// Options configure the Image API.
type Options struct {
	// PublicURL is the base URL the version documents and Location headers advertise; empty:
	// the request's own scheme and host (and the prefix the API is mounted under).
	PublicURL string
	// Web fetches web-download imports; nil: catalog.DefaultWebDownloader (http and https on
	// ports 80 and 443 to public addresses, as Glance's default import filter).
	Web *catalog.WebDownloader
	// Log receives faults and failed background imports; nil: slog.Default().
	Log *slog.Logger
}

// API serves the Image API v2.
type API struct {
	cat    *catalog.Catalog
	authn  *auth.Authenticator
	opt    Options
	routes []route
}

// handlerFunc serves one route for an authenticated caller and returns its error instead of
// writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, pr auth.Principal) error

// route is one endpoint: a method and a path whose {name} segments are captured as path
// values.
type route struct {
	method  string
	pattern []string
	public  bool // served without a token (versions, schemas)
	h       handlerFunc
}

// New returns the Image API over cat. Every /v2 request but the schemas needs a Keystone
// token that authn accepts; with authn nil (--auth none) every caller acts as an admin
// without a project, as Glance's noauth pipeline does.
func New(cat *catalog.Catalog, authn *auth.Authenticator, opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &API{cat: cat, authn: authn, opt: opts}
	a.routes = a.routeTable()
	return a
}

// routeTable lists every endpoint (§1.2). HEAD is served by the GET route.
func (a *API) routeTable() []route {
	r := func(method, path string, h handlerFunc) route {
		return route{method: method, pattern: splitPath(path), h: h}
	}
	pub := func(method, path string, h handlerFunc) route {
		rt := r(method, path, h)
		rt.public = true
		return rt
	}
	return []route{
		pub("GET", "/", a.getVersionsRoot),     // §1.1, 300
		pub("GET", "/versions", a.getVersions), // §1.1, 200
		pub("GET", "/v2", a.getVersion),
		pub("GET", "/v2/schemas/image", a.getImageSchema),
		pub("GET", "/v2/schemas/images", a.getImagesSchema),
		pub("GET", "/v2/schemas/member", a.getMemberSchema),
		pub("GET", "/v2/schemas/members", a.getMembersSchema),
		r("GET", "/v2/images", a.listImages),                               // §1.6
		r("POST", "/v2/images", a.createImage),                             // §1.4
		r("GET", "/v2/images/{id}", a.showImage),                           // §1.3
		r("PATCH", "/v2/images/{id}", a.updateImage),                       // §1.5
		r("DELETE", "/v2/images/{id}", a.deleteImage),                      // §1.9
		r("POST", "/v2/images/{id}/actions/deactivate", a.deactivateImage), // §1.2
		r("POST", "/v2/images/{id}/actions/reactivate", a.reactivateImage), // §1.2
		r("PUT", "/v2/images/{id}/file", a.uploadImageData),                // §1.7
		r("GET", "/v2/images/{id}/file", a.downloadImageData),              // §1.7
		r("PUT", "/v2/images/{id}/stage", a.stageImageData),                // §1.7
		r("POST", "/v2/images/{id}/import", a.importImage),                 // §1.8
		r("PUT", "/v2/images/{id}/tags/{tag}", a.addTag),                   // §1.2
		r("DELETE", "/v2/images/{id}/tags/{tag}", a.deleteTag),             // §1.2
		r("GET", "/v2/images/{id}/members", a.listMembers),                 // §2.2
		r("POST", "/v2/images/{id}/members", a.addMember),                  // §2.2
		r("GET", "/v2/images/{id}/members/{member}", a.showMember),         // §2.2
		r("PUT", "/v2/images/{id}/members/{member}", a.updateMember),       // §2.2
		r("DELETE", "/v2/images/{id}/members/{member}", a.removeMember),    // §2.2
		r("GET", "/v2/info/import", a.getImportInfo),                       // §1.8
		r("GET", "/v2/info/stores", a.getStoresInfo),                       // §5.6
		r("GET", "/v2/info/usage", a.getUsage),                             // §5.3
	}
}

// ServeHTTP tags the response with a request id, finds the route (answering unknown API
// versions with the versions document), authenticates, and runs the handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Openstack-Request-Id", "req-"+uuid.NewString())
	segs, ok := pathSegments(r)
	if !ok {
		a.writeError(w, r, errorf(http.StatusNotFound, "The resource could not be found."))
		return
	}
	if len(segs) > 0 && versionRE.MatchString(segs[0]) {
		if !supportedVersion(segs[0]) {
			a.getVersionsRoot(w, r, auth.Principal{})
			return
		}
		segs[0] = "v2"
	}
	rt, allowed := a.match(r, segs)
	if rt == nil {
		if len(allowed) == 0 {
			a.writeError(w, r, errorf(http.StatusNotFound, "The resource could not be found."))
			return
		}
		a.writeError(w, r, errorf(http.StatusMethodNotAllowed, "The method %s is not allowed for this resource.", r.Method).
			withHeader("Allow", strings.Join(allowed, ", ")))
		return
	}
	pr := noauthPrincipal
	if !rt.public {
		var err error
		if pr, err = a.authenticate(r); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if err := rt.h(w, r, pr); err != nil {
		a.writeError(w, r, err)
	}
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

// match finds the route for segs and sets its path values; without one it returns the
// methods the path allows.
func (a *API) match(r *http.Request, segs []string) (*route, []string) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	var allowed []string
	for i := range a.routes {
		rt := &a.routes[i]
		vals, ok := matchPattern(rt.pattern, segs)
		if !ok {
			continue
		}
		if rt.method != method {
			if !slices.Contains(allowed, rt.method) {
				allowed = append(allowed, rt.method)
			}
			continue
		}
		for k, v := range vals {
			// Image ids are UUIDs in any case, as Glance on MySQL finds them.
			if lower := strings.ToLower(v); k == "id" && catalog.ValidID(lower) {
				v = lower
			}
			r.SetPathValue(k, v)
		}
		return rt, nil
	}
	return nil, allowed
}

func matchPattern(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	vals := map[string]string{}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if segs[i] == "" {
				return nil, false
			}
			vals[p[1:len(p)-1]] = segs[i]
		} else if p != segs[i] {
			return nil, false
		}
	}
	return vals, true
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
