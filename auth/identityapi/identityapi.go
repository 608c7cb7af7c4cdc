// Package identityapi serves the Keystone v3 subset the OpenStack clients need, at
// /identity/v3 on the API port: version discovery, password and token authentication with
// project scope, token validation and revocation, the service catalog, and projects, users,
// roles, the default domain, role grants and role assignments. It is HTTP only: it parses,
// asks auth.Identity and auth.Policy, and writes Keystone's JSON; every decision is in auth/.
package identityapi

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/jsonbody"
)

// Options configure the identity API.
type Options struct {
	// Identity is the embedded identity store; required.
	Identity *auth.Identity
	// Policy decides who may do what; nil: the default policy over Identity.
	Policy *auth.Policy
	// PublicURL is the base URL of the API port (the Image API and /identity live under it);
	// empty: scheme://Host of each request.
	PublicURL string
	// RegistryURL is the base URL of the Registry API advertised in the catalog; empty: the
	// request's scheme and host name with RegistryPort. With neither, the catalog has no
	// registry.
	RegistryURL  string
	RegistryPort string
	// Region names the catalog's region (default RegionOne).
	Region string
	// Limits keeps the unified limits (registered limits and project limits); nil: a store
	// over Identity's metadata store.
	Limits *auth.Limits
	// Throttle locks out password guessing at POST /auth/tokens; nil: no lockout.
	Throttle *auth.Throttle
	// KeyManager lists the key-manager (Barbican subset, /key-manager on the API port) in the
	// catalog.
	KeyManager bool
}

// Handler serves the identity API; mount it at /identity and /identity/.
type Handler struct {
	opt Options
	id  *auth.Identity
	pol *auth.Policy
	mux *http.ServeMux
}

// maxBody bounds every request body.
const maxBody = 1 << 20

// New returns the identity API handler.
func New(opt Options) *Handler {
	if opt.Policy == nil {
		opt.Policy = &auth.Policy{Directory: opt.Identity}
	}
	if opt.Limits == nil {
		opt.Limits = opt.Identity.Limits()
	}
	if opt.Region == "" {
		opt.Region = "RegionOne"
	}
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	opt.RegistryURL = strings.TrimSuffix(opt.RegistryURL, "/")
	h := &Handler{opt: opt, id: opt.Identity, pol: opt.Policy, mux: http.NewServeMux()}
	h.routes()
	return h
}

// ServeHTTP routes r; requests no route takes get Keystone's 404 or 405 error body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		h.writeError(w, r, &Error{Status: http.StatusNotFound, Message: "The resource could not be found."})
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	h.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed,
		Message: "The method specified is not allowed for the requested resource."})
}

// handlerFunc is a route: it writes a success itself, or returns the error to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (h *Handler) handle(pattern string, fn handlerFunc) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// authedFunc is a route that needs a valid X-Auth-Token; it gets the token.
type authedFunc func(w http.ResponseWriter, r *http.Request, caller auth.Token) error

func (h *Handler) authed(fn authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		caller, err := h.id.ValidateToken(r.Context(), r.Header.Get("X-Auth-Token"))
		if err != nil {
			return err
		}
		return fn(w, r, caller)
	}
}

// allow returns forbidden unless the policy lets caller take act on target.
func (h *Handler) allow(r *http.Request, caller auth.Token, act auth.IdentityAction, target auth.IdentityTarget) error {
	ok, err := h.pol.AllowIdentity(r.Context(), caller.Principal(), act, target)
	if err != nil {
		return err
	}
	if !ok {
		return forbidden(act)
	}
	return nil
}

// apiBase is the URL clients reach the API port at.
func (h *Handler) apiBase(r *http.Request) string {
	if h.opt.PublicURL != "" {
		return h.opt.PublicURL
	}
	return scheme(r) + "://" + r.Host
}

// v3 is the base of the identity v3 API.
func (h *Handler) v3(r *http.Request) string { return h.apiBase(r) + "/identity/v3" }

// registryBase is the URL of the Registry API, or empty when unknown.
func (h *Handler) registryBase(r *http.Request) string {
	if h.opt.RegistryURL != "" || h.opt.RegistryPort == "" {
		return h.opt.RegistryURL
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(r.Host); err == nil {
		host = hh
	}
	return scheme(r) + "://" + net.JoinHostPort(strings.Trim(host, "[]"), h.opt.RegistryPort)
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// decode reads r's JSON body (at most maxBody bytes) into v: malformed JSON, a body that is
// not one JSON object or values of the wrong type are a 400, an oversized body a 413.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	err := jsonbody.Decode(w, r, maxBody, v)
	var bad *jsonbody.Error
	if errors.As(err, &bad) {
		return badRequest("%s", bad.Error())
	}
	return err
}

// writeJSON writes v with status; HEAD gets the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	return jsonbody.Write(w, r, status, "application/json", v)
}

// flag reads a boolean query parameter as Keystone does: present without a value is true,
// "0", "false", "no" and "off" are false.
func flag(r *http.Request, name string) bool {
	q := r.URL.Query()
	if !q.Has(name) {
		return false
	}
	switch strings.ToLower(q.Get(name)) {
	case "0", "false", "no", "off":
		return false
	}
	return true
}
