// Package registry is the Registry API door: the OCI Distribution Spec v1.1 over HTTP
// (end-1 … end-14), with handlers that parse the request, call storage, and write the
// answer or the spec's error body.
package registry

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/xloud/xloud-image/internal/reqlog"
)

// kind names the resource a /v2/ path addresses.
type kind int

const (
	kindBase kind = iota
	kindCatalog
	kindUploads // /v2/<name>/blobs/uploads/
	kindUpload  // /v2/<name>/blobs/uploads/<id>
	kindBlob
	kindManifest
	kindTags
	kindReferrers
	kindBlobURL // /v2/<name>/blobs/<digest>/url (signedurl.go)
)

// route is a parsed /v2/ path: the repository name and the last path element (digest, tag,
// upload id).
type route struct {
	kind kind
	name string
	ref  string
}

// nameRE is the spec's repository name grammar.
var nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// tagRE is the spec's tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// maxNameLen keeps host + "/" + name within what clients accept.
const maxNameLen = 255

// parseRoute reads a path under /v2/. Repository names hold slashes, so the resource is found
// from the end of the path: the last marker whose remainder is one path element.
func parseRoute(path string) (route, bool) {
	switch path {
	case "/v2", "/v2/":
		return route{kind: kindBase}, true
	case "/v2/_catalog":
		return route{kind: kindCatalog}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: kindTags, name: name}, true
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok {
		return route{kind: kindUploads, name: name}, true
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok {
		return route{kind: kindUploads, name: name}, true
	}
	if rest, ok := strings.CutSuffix(rest, "/url"); ok {
		if i := strings.LastIndex(rest, "/blobs/"); i >= 0 && strings.Contains(rest[i+7:], ":") && !strings.Contains(rest[i+7:], "/") {
			return route{kind: kindBlobURL, name: rest[:i], ref: rest[i+7:]}, true
		}
	}
	for _, m := range []struct {
		marker string
		kind   kind
	}{
		{"/blobs/uploads/", kindUpload},
		{"/blobs/", kindBlob},
		{"/manifests/", kindManifest},
		{"/referrers/", kindReferrers},
	} {
		i := strings.LastIndex(rest, m.marker)
		if i < 0 {
			continue
		}
		ref := rest[i+len(m.marker):]
		if ref == "" || strings.Contains(ref, "/") {
			continue
		}
		return route{kind: m.kind, name: rest[:i], ref: ref}, true
	}
	return route{}, false
}

// validName reports whether name is a repository name the registry accepts.
func validName(name string) bool {
	return len(name) <= maxNameLen && nameRE.MatchString(name)
}

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rt route) error

// handlers lists every endpoint: resource kind and method to handler. HEAD shares GET's
// handler.
func (reg *Registry) handlers() map[kind]map[string]handlerFunc {
	return map[kind]map[string]handlerFunc{
		kindBase:    {"GET": reg.getBase},                           // end-1
		kindCatalog: {"GET": reg.getCatalog},                        // _catalog
		kindBlob:    {"GET": reg.getBlob, "DELETE": reg.deleteBlob}, // end-2, end-10
		kindUploads: {"POST": reg.postUpload},                       // end-4a/b/c, end-11
		kindUpload: {"GET": reg.getUpload, "PATCH": reg.patchUpload, // end-13, end-5
			"PUT": reg.putUpload, "DELETE": reg.deleteUpload}, // end-6, end-14
		kindManifest: {"GET": reg.getManifest, "PUT": reg.putManifest, // end-3, end-7
			"DELETE": reg.deleteManifest}, // end-9
		kindTags:      {"GET": reg.getTags},      // end-8
		kindReferrers: {"GET": reg.getReferrers}, // end-12
		kindBlobURL:   {"POST": reg.postBlobURL}, // signed blob URL (extension)
	}
}

// ServeHTTP routes a /v2/ request, checks the name, runs the handler and writes its error.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if reqlog.ID(r.Context()) == "" { // served on its own, without the server's middleware
		r = r.WithContext(reqlog.WithID(r.Context()))
		w.Header().Set(reqlog.Header, reqlog.ID(r.Context()))
	}
	if reg.opt.Ready != nil {
		if err := reg.opt.Ready(r.Context()); err != nil {
			reg.writeError(w, r, err) // nothing can be answered right without the store
			return
		}
	}
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		reg.writeError(w, r, E(CodeNameUnknown).WithMessage("no such endpoint"))
		return
	}
	if rt.kind != kindBase && rt.kind != kindCatalog && !validName(rt.name) {
		reg.writeError(w, r, E(CodeNameInvalid).WithDetail(map[string]string{"name": rt.name}))
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	h, ok := reg.routes[rt.kind][method]
	if !ok {
		reg.writeError(w, r, E(CodeUnsupported).WithMessage("method %s not allowed here", r.Method))
		return
	}
	r, err := reg.authorize(r, rt)
	if err == nil {
		err = reg.checkNamespace(r, rt)
	}
	if err != nil {
		reg.writeError(w, r, err)
		return
	}
	if err := h(w, r, rt); err != nil {
		reg.writeError(w, r, err)
	}
}
