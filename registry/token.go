package registry

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// TokenHandler is the registry token endpoint (the realm of the Bearer challenge): it takes
// HTTP Basic credentials, a Keystone token, or nothing (anonymous), and returns a short-lived
// signed token granting the requested scopes as far as the policy allows. GET is the Docker
// token protocol; POST is its OAuth2 form (grant_type=password).
func (reg *Registry) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := reg.issueToken(w, r); err != nil {
			reg.writeError(w, r, err)
		}
	})
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

func (reg *Registry) issueToken(w http.ResponseWriter, r *http.Request) error {
	acc := reg.opt.Access
	if acc == nil {
		return E(CodeUnsupported).WithStatus(http.StatusNotFound).WithMessage("authentication is off")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return E(CodeUnsupported)
	}
	a, err := reg.tokenCredentials(r)
	if err != nil {
		if !auth.IsAuthError(err) {
			return err
		}
		reg.logRefusal(r, slog.LevelWarn, err)
		return E(CodeUnauthorized).WithMessage("invalid credentials")
	}
	if a.Kind == auth.CredRegistryToken {
		return E(CodeUnauthorized).WithMessage("a registry token cannot be exchanged for another")
	}
	var scopes []string
	for _, s := range r.URL.Query()["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}
	if r.Method == http.MethodPost {
		scopes = append(scopes, strings.Fields(r.PostForm.Get("scope"))...)
	}
	var access []auth.Access
	for _, s := range scopes {
		g, err := reg.grant(r, a.Principal, s)
		if err != nil {
			return err
		}
		if g != nil {
			access = append(access, *g)
		}
	}
	tok, claims, err := acc.Authenticator.Signer.Sign(r.Context(), a.Principal, access)
	if err != nil {
		return err
	}
	resp := tokenResponse{Token: tok, AccessToken: tok,
		ExpiresIn: int(claims.Expires - claims.IssuedAt),
		IssuedAt:  time.Unix(claims.IssuedAt, 0).UTC().Format(time.RFC3339)}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(resp)
}

// tokenCredentials reads the caller: Basic or Keystone token as on any request, or the
// OAuth2 password grant.
func (reg *Registry) tokenCredentials(r *http.Request) (auth.Authenticated, error) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return auth.Authenticated{}, auth.ErrTokenMalformed
		}
		if r.PostForm.Get("grant_type") == "password" {
			return reg.opt.Access.Authenticator.Password(r.Context(), r.RemoteAddr, r.PostForm.Get("username"), r.PostForm.Get("password"))
		}
	}
	return reg.opt.Access.Authenticator.FromRequest(r)
}

// grant parses one scope ("repository:<name>:<actions>" or "registry:catalog:*") and
// returns what the policy allows of it; nil when nothing.
func (reg *Registry) grant(r *http.Request, pr auth.Principal, scope string) (*auth.Access, error) {
	i := strings.Index(scope, ":")
	j := strings.LastIndex(scope, ":")
	if i < 0 || j <= i {
		return nil, nil
	}
	typ, name, actions := scope[:i], scope[i+1:j], strings.Split(scope[j+1:], ",")
	switch typ {
	case "registry":
		if name == "catalog" && reg.opt.Access.Policy.AllowCatalog(pr) {
			return &auth.Access{Type: typ, Name: name, Actions: []string{"*"}}, nil
		}
		return nil, nil
	case "repository":
		if !validName(name) {
			return nil, nil
		}
		granted, err := reg.opt.Access.Policy.Grant(r.Context(), pr, name, actions)
		if err != nil || len(granted) == 0 {
			return nil, err
		}
		return &auth.Access{Type: typ, Name: name, Actions: granted}, nil
	}
	return nil, nil
}
