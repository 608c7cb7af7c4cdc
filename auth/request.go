package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// TokenValidator validates Keystone-style tokens: the embedded Identity, or an external
// Keystone.
type TokenValidator interface {
	ValidateToken(ctx context.Context, secret string) (Token, error)
}

// PasswordChecker checks user names and passwords.
type PasswordChecker interface {
	Authenticate(ctx context.Context, name, password string) (User, error)
	IsAdmin(ctx context.Context, userID string) (bool, error)
}

// Authenticator turns a request's credentials into a Principal: HTTP Basic (user name and
// password), a registry bearer token, or a Keystone token (as a bearer token or in
// X-Auth-Token). No credentials is the Anonymous principal.
type Authenticator struct {
	Passwords PasswordChecker
	Tokens    TokenValidator
	Signer    *Signer
	// Throttle locks out password guessing; nil: no lockout.
	Throttle *Throttle
}

// Credential says what kind of credentials a request carried.
type Credential int

// Kinds of credentials.
const (
	CredNone Credential = iota
	CredBasic
	CredKeystoneToken
	CredRegistryToken
)

// Authenticated is the outcome of reading a request's credentials.
type Authenticated struct {
	Principal Principal
	Kind      Credential
	// Claims is set for a registry bearer token: its grants are all it allows.
	Claims *RegistryClaims
}

// maxCredentialLen bounds credentials before any work is done on them.
const maxCredentialLen = 8192

// FromRequest authenticates r. Bad credentials are ErrUnauthorized (or ErrTokenExpired,
// ErrTokenMalformed); they never fall back to anonymous.
func (a *Authenticator) FromRequest(r *http.Request) (Authenticated, error) {
	ctx := r.Context()
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		return a.keystoneToken(ctx, tok)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Authenticated{Principal: Anonymous}, nil
	}
	if len(h) > maxCredentialLen {
		return Authenticated{}, ErrTokenMalformed
	}
	scheme, value, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return Authenticated{}, ErrTokenMalformed
		}
		return a.Password(ctx, r.RemoteAddr, user, pass)
	case "bearer":
		value = strings.TrimSpace(value)
		if LooksLikeRegistryToken(value) && a.Signer != nil {
			c, err := a.Signer.Verify(ctx, value)
			if err != nil {
				return Authenticated{}, err
			}
			return Authenticated{Principal: c.Principal(), Kind: CredRegistryToken, Claims: &c}, nil
		}
		return a.keystoneToken(ctx, value)
	}
	return Authenticated{}, ErrTokenMalformed
}

// Password authenticates a user name and password sent from addr (the request's
// RemoteAddr), within the Throttle's lockouts.
func (a *Authenticator) Password(ctx context.Context, addr, user, pass string) (Authenticated, error) {
	if a.Passwords == nil {
		return Authenticated{}, ErrUnauthorized
	}
	u, err := a.Throttle.Guard(ctx, user, addr, func() (User, error) {
		return a.Passwords.Authenticate(ctx, user, pass)
	})
	if err != nil {
		return Authenticated{}, err
	}
	admin, err := a.Passwords.IsAdmin(ctx, u.ID)
	if err != nil {
		return Authenticated{}, err
	}
	return Authenticated{
		Principal: Principal{UserID: u.ID, UserName: u.Name, Admin: admin},
		Kind:      CredBasic,
	}, nil
}

func (a *Authenticator) keystoneToken(ctx context.Context, secret string) (Authenticated, error) {
	if a.Tokens == nil {
		return Authenticated{}, ErrUnauthorized
	}
	t, err := a.Tokens.ValidateToken(ctx, secret)
	if err != nil {
		return Authenticated{}, err
	}
	return Authenticated{Principal: t.Principal(), Kind: CredKeystoneToken}, nil
}

// Principal is who a validated token speaks for.
func (t Token) Principal() Principal {
	return Principal{
		UserID: t.UserID, UserName: t.User.Name,
		Scoped: t.ProjectID != "", ProjectID: t.ProjectID, ScopedRoles: t.Roles,
		Admin: hasRole(t.Roles, RoleAdmin),
	}
}

// IsAuthError reports whether err is a refusal of credentials (as opposed to a fault).
func IsAuthError(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrTokenMalformed)
}

type ctxKey struct{}

// WithAuthenticated stores who made the request in its context.
func WithAuthenticated(ctx context.Context, a Authenticated) context.Context {
	return context.WithValue(ctx, ctxKey{}, a)
}

// FromContext returns who made the request, and whether anyone was recorded.
func FromContext(ctx context.Context) (Authenticated, bool) {
	a, ok := ctx.Value(ctxKey{}).(Authenticated)
	return a, ok
}
