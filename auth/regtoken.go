package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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

// regTokenKeysKey holds the token signing keys (keyRing), shared by every node.
const regTokenKeysKey = "regtoken:keys"

// DefaultTokenKeyRotation is how long one key signs registry tokens when the Signer is given
// no Rotate.
const DefaultTokenKeyRotation = 24 * time.Hour

// Signer signs and verifies registry bearer tokens with the key ring in the metadata store:
// a token names its key in the JWT header ("kid"), so any node verifies what any node signed,
// across rotations.
type Signer struct {
	Service string
	Now     func() time.Time
	ring    *keyRing
}

// NewSigner returns a signer over the keys in m, rotating them every rotate (0: the
// default), and makes sure a signing key exists.
func NewSigner(ctx context.Context, m meta.Store, service string, rotate ...time.Duration) (*Signer, error) {
	r := DefaultTokenKeyRotation
	if len(rotate) > 0 && rotate[0] > 0 {
		r = rotate[0]
	}
	s := &Signer{Service: service, Now: time.Now,
		ring: &keyRing{Meta: m, Key: regTokenKeysKey, Rotate: r, MaxTTL: RegistryTokenTTL}}
	if _, err := s.ring.signingKey(ctx, s.Now()); err != nil {
		return nil, fmt.Errorf("load token signing key: %w", err)
	}
	return s, nil
}

// Sign issues a token for pr with the granted access.
func (s *Signer) Sign(ctx context.Context, pr Principal, access []Access) (string, RegistryClaims, error) {
	now := s.Now()
	c := RegistryClaims{
		Issuer: tokenIssuer, Subject: pr.UserID, Name: pr.UserName, Admin: pr.Admin, Audience: s.Service,
		Project: pr.ProjectID, Roles: pr.ScopedRoles,
		IssuedAt: now.Unix(), NotBefore: now.Add(-time.Minute).Unix(),
		Expires: now.Add(RegistryTokenTTL).Unix(), ID: RandomSecret(12), Access: access,
	}
	if c.Access == nil {
		c.Access = []Access{}
	}
	k, err := s.ring.signingKey(ctx, now)
	if err != nil {
		return "", c, err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", c, err
	}
	hdr, _ := json.Marshal(jwtHeader{Alg: "HS256", Typ: "JWT", Kid: k.ID})
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + jwtMAC(k.Secret, signing), c, nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid"`
}

func jwtMAC(key []byte, signing string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// LooksLikeRegistryToken tells a JWT from an opaque Keystone token.
func LooksLikeRegistryToken(t string) bool { return strings.Count(t, ".") == 2 }

// Verify checks a registry token: exactly our header (HS256 and a key id; "none" and every
// other algorithm are refused), a valid signature under the key it names, our issuer and service, and the time window.
func (s *Signer) Verify(ctx context.Context, token string) (RegistryClaims, error) {
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
	var h jwtHeader
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" || h.Kid == "" {
		return c, ErrTokenMalformed
	}
	key, err := s.ring.secret(ctx, h.Kid)
	if err != nil {
		return c, err
	}
	if key == nil {
		return c, ErrUnauthorized // a key never made, or dropped after its tokens expired
	}
	want := jwtMAC(key, parts[0]+"."+parts[1])
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
