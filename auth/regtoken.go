package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// Registry bearer tokens are JWTs signed with HMAC-SHA256 under a key kept in the metadata
// store (so every node shares it). They are short-lived and carry exactly the access the
// token endpoint granted, in the Docker token scope grammar.

// RegistryTokenTTL is how long a registry bearer token lives.
const RegistryTokenTTL = 5 * time.Minute

// Access is one granted scope: a resource and the actions allowed on it.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// RegistryClaims is the payload of a registry bearer token.
type RegistryClaims struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"` // user id; empty for anonymous
	Name    string `json:"name,omitempty"`
	Admin   bool   `json:"adm,omitempty"`
	// Project and Roles carry the scope of the Keystone token the registry token was
	// issued for: a token scoped to one project keeps its roles on that project only.
	Project   string   `json:"prj,omitempty"`
	Roles     []Role   `json:"rol,omitempty"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
}

// Principal is who the token speaks for, bounded by what it grants.
func (c RegistryClaims) Principal() Principal {
	return Principal{
		Anonymous: c.Subject == "", UserID: c.Subject, UserName: c.Name, Admin: c.Admin,
		Scoped: c.Project != "", ProjectID: c.Project, ScopedRoles: c.Roles,
		Bounded: true, Grants: c.Access,
	}
}

// Allows reports whether the claims grant action on resource typ/name.
func (c RegistryClaims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		for _, act := range a.Actions {
			if act == action || act == "*" {
				return true
			}
		}
	}
	return false
}

const tokenIssuer = "xloud-image"

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// Signer signs and verifies registry bearer tokens.
type Signer struct {
	key     []byte
	Service string
	Now     func() time.Time
}

// NewSigner loads the signing key from the metadata store, creating it on first use.
func NewSigner(ctx context.Context, m meta.Store, service string) (*Signer, error) {
	var key []byte
	err := m.Update(ctx, func(tx meta.Tx) error {
		k, err := tx.Get("authkey")
		if err == nil {
			key = k
			return nil
		}
		if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		key = []byte(randomString(48))
		return tx.Put("authkey", key)
	})
	if err != nil {
		return nil, fmt.Errorf("load token signing key: %w", err)
	}
	return &Signer{key: key, Service: service, Now: time.Now}, nil
}

// Sign issues a token for pr with the granted access.
func (s *Signer) Sign(pr Principal, access []Access) (string, RegistryClaims, error) {
	now := s.Now()
	c := RegistryClaims{
		Issuer: tokenIssuer, Subject: pr.UserID, Name: pr.UserName, Admin: pr.Admin, Audience: s.Service,
		Project: pr.ProjectID, Roles: pr.ScopedRoles,
		IssuedAt: now.Unix(), NotBefore: now.Add(-time.Minute).Unix(),
		Expires: now.Add(RegistryTokenTTL).Unix(), ID: randomString(12), Access: access,
	}
	if c.Access == nil {
		c.Access = []Access{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", c, err
	}
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + s.mac(signing), c, nil
}

func (s *Signer) mac(signing string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// LooksLikeRegistryToken tells a JWT from an opaque Keystone token.
func LooksLikeRegistryToken(t string) bool { return strings.Count(t, ".") == 2 }

// Verify checks a registry token: exactly our header (HS256; "none" and every other algorithm
// are refused), a valid signature under our key, our issuer and service, and the time window.
func (s *Signer) Verify(token string) (RegistryClaims, error) {
	var c RegistryClaims
	if len(token) > maxTokenLen {
		return c, ErrTokenMalformed
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, ErrTokenMalformed
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, ErrTokenMalformed
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
		return c, ErrTokenMalformed
	}
	want := s.mac(parts[0] + "." + parts[1])
	if !hmac.Equal([]byte(want), []byte(parts[2])) {
		return c, ErrUnauthorized
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, ErrTokenMalformed
	}
	now := s.Now().Unix()
	switch {
	case c.Issuer != tokenIssuer || c.Audience != s.Service:
		return c, ErrUnauthorized
	case now >= c.Expires:
		return c, ErrTokenExpired
	case now < c.NotBefore:
		return c, ErrUnauthorized
	}
	return c, nil
}
