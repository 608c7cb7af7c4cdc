package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/reqlog"
)

// Access is how the registry asks who a caller is and what they may do. Nil means an open
// registry (--auth none).
type Access struct {
	Authenticator *auth.Authenticator
	Policy        *auth.Policy
	// Service names this registry in tokens and challenges.
	Service string
}

// action is what a request does to its repository.
func action(rt route, method string) auth.Action {
	switch {
	case method == http.MethodGet || method == http.MethodHead || rt.kind == kindBlobURL:
		return auth.ActionPull
	case method == http.MethodDelete && (rt.kind == kindManifest || rt.kind == kindBlob):
		return auth.ActionDelete
	}
	return auth.ActionPush
}

// authorize authenticates r and checks it may do what it asks; it returns the request with
// the caller recorded in its context.
func (reg *Registry) authorize(r *http.Request, rt route) (*http.Request, error) {
	acc := reg.opt.Access
	if acc == nil {
		return r, nil
	}
	a, err := acc.Authenticator.FromRequest(r)
	if err != nil {
		if !auth.IsAuthError(err) {
			return r, err
		}
		reg.logRefusal(r, slog.LevelWarn, err)
		return r, reg.challenge(r, rt, "invalid_token")
	}
	r = r.WithContext(auth.WithAuthenticated(r.Context(), a))
	reqlog.SetCaller(r.Context(), a.Principal.UserName, a.Principal.ProjectID)
	switch rt.kind {
	case kindBase:
		// Clients learn the realm here: without credentials, always a challenge.
		if a.Kind == auth.CredNone {
			return r, reg.challenge(r, rt, "")
		}
		return r, nil
	case kindCatalog:
		if a.Kind == auth.CredNone {
			return r, reg.challenge(r, rt, "")
		}
		if !acc.Policy.AllowCatalog(a.Principal) {
			return r, reg.challenge(r, rt, "insufficient_scope")
		}
		return r, nil
	}
	act := action(rt, r.Method)
	if from := mountSource(r, rt); from != "" && !acc.Policy.TokenCovers(a.Principal, from, auth.ActionPull) {
		reg.logRefusal(r, slog.LevelInfo, fmt.Errorf("the token does not cover pull on the mount source %s", from))
		return r, reg.challenge(r, rt, "insufficient_scope")
	}
	ok, err := reg.allowed(r.Context(), rt.name, act)
	if err != nil {
		return r, err
	}
	if ok {
		return r, nil
	}
	if a.Kind == auth.CredNone {
		// Every client's first request: the challenge sends it for credentials.
		reg.logRefusal(r, slog.LevelDebug, fmt.Errorf("%s on %s: anonymous caller challenged", act, rt.name))
		return r, reg.challenge(r, rt, "")
	}
	why := acc.Policy.Explain(r.Context(), a.Principal, rt.name, act)
	if a.Principal.Anonymous || a.Claims != nil {
		// Registry tokens are challenged for a wider one: clients re-authenticate on 401.
		reg.logRefusal(r, slog.LevelInfo, fmt.Errorf("%s: %s", principalName(a.Principal), why))
		return r, reg.challenge(r, rt, "insufficient_scope")
	}
	// A signed-in caller learns what they lack; writeError logs it.
	return r, E(CodeDenied).WithMessage("%s: %s", principalName(a.Principal), why)
}

// allowed asks the policy whether the caller recorded in ctx may act on repo; a registry
// token's principal is bounded by its grants.
func (reg *Registry) allowed(ctx context.Context, repo string, act auth.Action) (bool, error) {
	acc := reg.opt.Access
	if acc == nil {
		return true, nil
	}
	a, ok := auth.FromContext(ctx)
	if !ok {
		return false, nil
	}
	return acc.Policy.AllowRepository(ctx, a.Principal, repo, act)
}

// canList decides whether the caller may see repo in the catalog.
func (reg *Registry) canList(ctx context.Context, repo string) (bool, error) {
	acc := reg.opt.Access
	if acc == nil {
		return true, nil
	}
	a, _ := auth.FromContext(ctx)
	return acc.Policy.ListRepository(ctx, a.Principal, repo)
}

// challenge answers 401 with the Bearer challenge that sends clients to the token endpoint.
func (reg *Registry) challenge(r *http.Request, rt route, errCode string) error {
	scope := ""
	switch rt.kind {
	case kindBase:
	case kindCatalog:
		scope = "registry:catalog:*"
	default:
		acts := "pull"
		switch action(rt, r.Method) {
		case auth.ActionPush:
			acts = "pull,push"
		case auth.ActionDelete:
			acts = "delete"
		}
		scope = "repository:" + rt.name + ":" + acts
		if from := mountSource(r, rt); from != "" {
			scope += " repository:" + from + ":pull"
		}
	}
	v := fmt.Sprintf(`Bearer realm=%q,service=%q`, reg.baseURL(r)+"/token", reg.opt.Access.Service)
	if scope != "" {
		v += fmt.Sprintf(`,scope=%q`, scope)
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error=%q`, errCode)
	}
	return E(CodeUnauthorized).WithHeader("WWW-Authenticate", v)
}

// mountSource is the repository a cross-repository mount names in from, if any.
func mountSource(r *http.Request, rt route) string {
	q := r.URL.Query()
	if from := q.Get("from"); rt.kind == kindUploads && r.Method == http.MethodPost && q.Get("mount") != "" &&
		from != "" && from != rt.name && validName(from) {
		return from
	}
	return ""
}

// baseURL is the URL clients reach this registry at.
func (reg *Registry) baseURL(r *http.Request) string {
	if reg.opt.PublicURL != "" {
		return reg.opt.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// logRefusal logs a refused request once, without its credentials: failed sign-ins at WARN,
// refusals at INFO, the anonymous challenge every client meets first at DEBUG.
func (reg *Registry) logRefusal(r *http.Request, level slog.Level, err error) {
	user := ""
	if u, _, ok := r.BasicAuth(); ok {
		user = u
	}
	reg.log().Log(r.Context(), level, "registry access refused", "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "user", user, "reason", refusalReason(err), "request_id", reqlog.ID(r.Context()))
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, auth.ErrTokenMalformed):
		return "malformed credentials"
	case errors.Is(err, auth.ErrLockedOut):
		return "locked out after too many failed sign-ins"
	case errors.Is(err, auth.ErrUnauthorized):
		return "invalid credentials"
	}
	return err.Error()
}

func principalName(p auth.Principal) string {
	if p.Anonymous {
		return "anonymous"
	}
	return strings.TrimSpace(p.UserName + " (" + p.UserID + ")")
}
