// Package keymanager serves the subset of OpenStack Barbican's Key Manager API v1 that
// Glance's image signing needs, at /key-manager on the API port: version discovery and the
// secrets resource (store, list, show, payload, delete), as python-barbicanclient
// (`openstack secret …`) speaks it. It is HTTP only: it parses, asks auth.Policy, keeps the
// secrets in auth.Secrets and writes Barbican's JSON.
package keymanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/jsonbody"
)

// Options configure the key-manager API.
type Options struct {
	Secrets       *auth.Secrets
	Authenticator *auth.Authenticator
	Policy        *auth.Policy
	// PublicURL is the base URL of the API port; empty: scheme://Host of each request.
	PublicURL string
}

// Handler serves the key-manager API; mount it at /key-manager and /key-manager/.
type Handler struct {
	opt Options
	mux *http.ServeMux
}

// Prefix is where the API is mounted on the API port; the identity catalog lists it as the
// key-manager service.
const Prefix = "/key-manager"

// maxBody bounds a request body: a payload of auth.MaxSecretBytes, base64, and the rest.
const maxBody = 64 << 10

// New returns the key-manager API handler.
func New(opt Options) *Handler {
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	h := &Handler{opt: opt, mux: http.NewServeMux()}
	h.routes()
	return h
}

// routes lists every route (Barbican API reference, "Secrets API"); GET routes also answer
// HEAD. barbicanclient adds a trailing slash to POST paths.
func (h *Handler) routes() {
	const v1 = Prefix + "/v1"
	h.handle("GET "+Prefix, h.handleVersions)
	h.handle("GET "+Prefix+"/{$}", h.handleVersions)
	h.handle("GET "+v1, h.handleVersion)
	h.handle("GET "+v1+"/{$}", h.handleVersion)
	h.handle("POST "+v1+"/secrets", h.authed(h.handleCreateSecret))
	h.handle("POST "+v1+"/secrets/{$}", h.authed(h.handleCreateSecret))
	h.handle("GET "+v1+"/secrets", h.authed(h.handleListSecrets))
	h.handle("GET "+v1+"/secrets/{$}", h.authed(h.handleListSecrets))
	h.handle("GET "+v1+"/secrets/{id}", h.authed(h.handleGetSecret))
	h.handle("GET "+v1+"/secrets/{id}/payload", h.authed(h.handleGetPayload))
	h.handle("DELETE "+v1+"/secrets/{id}", h.authed(h.handleDeleteSecret))
}

// ServeHTTP routes r; requests no route takes get Barbican's 404 or 405 error body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		h.writeError(w, r, &Error{Status: http.StatusNotFound, Description: "The resource could not be found."})
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	h.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Description: "The method is not allowed on this resource."})
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

// authedFunc is a route that needs credentials; it gets who sent them.
type authedFunc func(w http.ResponseWriter, r *http.Request, pr auth.Principal) error

// authed authenticates the request (X-Auth-Token, as keystonemiddleware does in front of
// Barbican); no credentials is a 401, as every secrets route needs a project.
func (h *Handler) authed(fn authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := h.opt.Authenticator.FromRequest(r)
		if err != nil {
			return err
		}
		if a.Principal.Anonymous {
			return auth.ErrUnauthorized
		}
		return fn(w, r, a.Principal)
	}
}

// base is the URL clients reach the API port at.
func (h *Handler) base(r *http.Request) string {
	if h.opt.PublicURL != "" {
		return h.opt.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// decode reads r's JSON body (at most maxBody bytes) into v; a malformed one is a 400.
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
	return jsonbody.Write(w, r, status, "application/json; charset=UTF-8", v)
}

func writeBody(w http.ResponseWriter, r *http.Request, status int, contentType string, b []byte) error {
	return jsonbody.WriteBytes(w, r, status, contentType, b)
}

// Error is a Barbican API error: its status and the description of Barbican's error body
// {"code":…,"title":…,"description":…}, which barbicanclient prints as "title: description".
type Error struct {
	Status      int
	Description string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Description) }

type errorBody struct {
	Code        int    `json:"code"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Description: fmt.Sprintf(format, args...)}
}

// asError maps an error from a handler or from auth/ onto the Barbican error to send.
func asError(err error) *Error {
	var e *Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Description: "Request entity is too large."}
	case auth.IsAuthError(err):
		return &Error{Status: http.StatusUnauthorized, Description: "The request you have made requires authentication."}
	case errors.Is(err, auth.ErrInvalid):
		return badRequest("%s", strings.TrimPrefix(err.Error(), auth.ErrInvalid.Error()+": "))
	case errors.Is(err, auth.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Description: "Secret not found."}
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Description: "Forbidden: you are not authorized to perform this action."}
	}
	return &Error{Status: http.StatusInternalServerError, Description: err.Error()}
}

// writeError writes err as Barbican does (no body for HEAD); a 401 names the identity
// endpoint as keystonemiddleware does. Faults and refusals are logged once.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	switch {
	case e.Status >= 500:
		slog.Error("key-manager API error", "method", r.Method, "path", r.URL.Path, "err", e.Description)
		e = &Error{Status: e.Status, Description: "An unexpected error prevented the server from fulfilling your request."}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		slog.Warn("key-manager access refused", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "status", e.Status, "reason", err.Error())
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", h.base(r)+"/identity"))
	}
	body, _ := json.Marshal(errorBody{Code: e.Status, Title: http.StatusText(e.Status), Description: e.Description})
	writeBody(w, r, e.Status, "application/json; charset=UTF-8", body)
}
