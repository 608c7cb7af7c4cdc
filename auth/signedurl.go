package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Signed URLs let a client that can send no credential (qemu's http block driver) read one
// blob: the URL carries its claims and an HMAC over them. The keys live in the metadata store
// so every node signs and verifies alike; each has an id, a new one is made every
// URLSigner.Rotate, and an old one keeps verifying until the last URL it signed has expired.
//
// Metadata key: signedurl:keys   JSON list of urlKey, oldest first.
const urlKeysKey = "signedurl:keys"

// URL claim errors; the door answers both 403 without saying more than which.
var (
	ErrURLInvalid = errors.New("the signed URL is malformed or its signature does not verify")
	ErrURLExpired = errors.New("the signed URL has expired")
)

// URLClaims is what a signed URL grants: a read of blob Digest of Repo (or, when Length is
// set, of Length bytes of it from Offset: a disk inside a tar layer), on behalf of User in
// Project, until Expires. Image is the image it was issued for, when issued by the Image API.
type URLClaims struct {
	KeyID   string `json:"k"`
	Nonce   string `json:"n"`
	Expires int64  `json:"e"` // Unix seconds
	Repo    string `json:"r"`
	Digest  string `json:"d"`
	Image   string `json:"i,omitempty"`
	User    string `json:"u"`
	Project string `json:"p,omitempty"`
	Offset  int64  `json:"o,omitempty"`
	Length  int64  `json:"l,omitempty"`
}

// ExpiresAt is the claims' expiry as a time.
func (c URLClaims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0).UTC() }

// URLSigner signs and verifies URL claims with the keys in the metadata store.
type URLSigner struct {
	Meta meta.Store
	// Rotate is how long a key signs (0: 24 h); MaxTTL bounds a URL's life (0: 12 h), so a key
	// is dropped Rotate+MaxTTL after it was made.
	Rotate time.Duration
	MaxTTL time.Duration
	Now    func() time.Time

	once sync.Once
	ring *keyRing

	mu sync.Mutex
	// verified holds the claims of tokens whose signature verified: a VM reading its disk
	// sends the same token thousands of times. Only the decoding and the MAC are skipped;
	// the expiry is checked at every use, and so is the policy (by the caller).
	verified map[string]URLClaims
}

func (s *URLSigner) keys() *keyRing {
	s.once.Do(func() {
		s.ring = &keyRing{Meta: s.Meta, Key: urlKeysKey, Rotate: s.rotate(), MaxTTL: s.MaxURLTTL()}
	})
	return s.ring
}

// maxVerified bounds the verified-token cache; when full it starts over.
const maxVerified = 1024

// DefaultURLTTL is a signed URL's life when the caller asks for none.
const DefaultURLTTL = time.Hour

func (s *URLSigner) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *URLSigner) rotate() time.Duration { return cmpOr(s.Rotate, 24*time.Hour) }

// DefaultTTL is a URL's life when none is asked for: DefaultURLTTL, within MaxURLTTL.
func (s *URLSigner) DefaultTTL() time.Duration { return min(DefaultURLTTL, s.MaxURLTTL()) }

// MaxURLTTL is the longest life a URL may be given.
func (s *URLSigner) MaxURLTTL() time.Duration { return cmpOr(s.MaxTTL, 12*time.Hour) }

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Sign fills in c's key id, nonce and expiry (now + ttl; ttl must be within (0, MaxTTL]) and
// returns the token that goes into the URL.
func (s *URLSigner) Sign(ctx context.Context, c URLClaims, ttl time.Duration) (string, URLClaims, error) {
	if ttl <= 0 || ttl > s.MaxURLTTL() {
		return "", c, fmt.Errorf("ttl %s outside (0, %s]", ttl, s.MaxURLTTL())
	}
	k, err := s.keys().signingKey(ctx, s.now())
	if err != nil {
		return "", c, err
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	c.KeyID, c.Nonce = k.ID, base64.RawURLEncoding.EncodeToString(nonce)
	c.Expires = s.now().Add(ttl).Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", c, err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(k.Secret, p)), c, nil
}

func mac(secret []byte, payload string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// Verify checks token's signature and expiry and returns its claims. A token whose key is
// unknown (never made, or dropped) is invalid.
func (s *URLSigner) Verify(ctx context.Context, token string) (URLClaims, error) {
	s.mu.Lock()
	c, hit := s.verified[token]
	s.mu.Unlock()
	if !hit {
		var err error
		if c, err = s.verify(ctx, token); err != nil {
			return c, err
		}
		s.mu.Lock()
		if s.verified == nil || len(s.verified) >= maxVerified {
			s.verified = map[string]URLClaims{}
		}
		s.verified[token] = c
		s.mu.Unlock()
	}
	if !s.now().Before(c.ExpiresAt()) {
		return c, ErrURLExpired
	}
	return c, nil
}

// verify decodes token and checks its signature and claims (not its expiry).
func (s *URLSigner) verify(ctx context.Context, token string) (URLClaims, error) {
	var c URLClaims
	p, sig, ok := strings.Cut(token, ".")
	if !ok {
		return c, ErrURLInvalid
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || json.Unmarshal(payload, &c) != nil || c.KeyID == "" {
		return URLClaims{}, ErrURLInvalid
	}
	secret, err := s.keys().secret(ctx, c.KeyID)
	if err != nil {
		return URLClaims{}, err
	}
	if secret == nil || !hmac.Equal(got, mac(secret, p)) {
		return URLClaims{}, ErrURLInvalid
	}
	if _, err := digest.Parse(c.Digest); err != nil || c.Repo == "" || c.User == "" || c.Offset < 0 || c.Length < 0 {
		return URLClaims{}, ErrURLInvalid
	}
	return c, nil
}

// URLPrincipal is the caller a signed URL speaks for, as they stand now: their current roles
// on the project they held the URL for (or, unscoped, whatever roles they are assigned), so
// a revoked role or membership refuses the URL at its next use.
func (p *Policy) URLPrincipal(ctx context.Context, c URLClaims) (Principal, error) {
	pr := Principal{UserID: c.User}
	if c.Project == "" {
		admin, err := p.anyAdmin(ctx, c.User)
		pr.Admin = admin
		return pr, err
	}
	roles, err := p.Directory.RolesOn(ctx, c.User, c.Project)
	if errors.Is(err, ErrNotFound) {
		return Principal{UserID: c.User, Scoped: true, ProjectID: c.Project}, nil
	}
	if err != nil {
		return Principal{}, fmt.Errorf("roles of %s on %s: %w", c.User, c.Project, err)
	}
	pr.Scoped, pr.ProjectID, pr.ScopedRoles, pr.Admin = true, c.Project, roles, hasRole(roles, RoleAdmin)
	return pr, nil
}

// anyAdmin reports whether an unscoped user holds the admin role anywhere (cloud-wide under
// the default policies), when the directory can tell.
func (p *Policy) anyAdmin(ctx context.Context, user string) (bool, error) {
	type assigner interface {
		Assignments(ctx context.Context, userID, projectID string) ([]Assignment, error)
	}
	a, ok := p.Directory.(assigner)
	if !ok {
		return false, nil
	}
	as, err := a.Assignments(ctx, user, "")
	if err != nil {
		return false, err
	}
	for _, x := range as {
		if x.Role == RoleAdmin {
			return true, nil
		}
	}
	return false, nil
}

// ReadSignedURL is the decision at every use of a signed URL whose signature and expiry
// Verify has checked: the blob must still be held by a manifest of its repository (for
// admins too: a deleted image's manifests are gone at once) and be readable now by the
// caller the URL speaks for, by exactly the rule of a blob GET (a deactivated image is
// Refused but to admins, a deleted one Hidden).
func (p *Policy) ReadSignedURL(ctx context.Context, c URLClaims) (Pull, Principal, error) {
	pr, err := p.URLPrincipal(ctx, c)
	if err != nil {
		return Pull{Decision: Hidden}, pr, err
	}
	d := digest.Digest(c.Digest)
	if p.Content != nil {
		holders, err := p.Content.BlobHolders(ctx, c.Repo, d)
		if err != nil || len(holders) == 0 {
			return Pull{Decision: Hidden}, pr, err
		}
	}
	// A blob GET's rule, the signing rule of the owning project included.
	pull, err := p.PullBlob(ctx, pr, c.Repo, d)
	return pull, pr, err
}
