package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// DefaultTokenTTL is how long a Keystone-style token lives (Keystone's default).
const DefaultTokenTTL = time.Hour

// Token is a validated Keystone-style token: who, scoped to which project, with which roles
// (computed when validated, so a revoked role stops working at once).
type Token struct {
	UserID    string    `json:"user_id"`
	ProjectID string    `json:"project_id,omitempty"`
	System    bool      `json:"system,omitempty"` // scoped to the system ("all"), not a project
	Methods   []string  `json:"methods"`
	Issued    time.Time `json:"issued_at"`
	Expires   time.Time `json:"expires_at"`
	AuditID   string    `json:"audit_id"`

	User    User    `json:"-"`
	Project Project `json:"-"`
	Roles   []Role  `json:"-"`
}

func tokenHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func keyToken(secret string) string { return "token:" + tokenHash(secret) }

// setTokens orders stored tokens by expiry ("<unix seconds, 12 digits>|<hash>"), so expired
// ones are found without a scan of the live ones.
const setTokens = "tokens"

func tokenExpiryKey(exp time.Time, secret string) string {
	return fmt.Sprintf("%012d|%s", exp.Unix(), tokenHash(secret))
}

// PurgeExpiredTokens removes tokens that expired before now; it returns how many.
func (id *Identity) PurgeExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for {
		var batch []string
		if err := id.meta.View(ctx, func(tx meta.Tx) (err error) {
			batch, err = tx.SetRange(setTokens, "", 500)
			return err
		}); err != nil {
			return n, err
		}
		var expired []string
		for _, k := range batch {
			var sec int64
			if _, err := fmt.Sscanf(k, "%012d|", &sec); err != nil || sec >= now.Unix() {
				break
			}
			expired = append(expired, k)
		}
		if len(expired) == 0 {
			return n, nil
		}
		err := id.meta.Update(ctx, func(tx meta.Tx) error {
			for _, k := range expired {
				_, hash, _ := strings.Cut(k, "|")
				var t Token
				if getJSON(tx, "token:"+hash, &t) == nil {
					if err := tx.SetRemove(keyUserTokens(t.UserID), k); err != nil {
						return err
					}
				}
				if err := tx.Delete("token:" + hash); err != nil {
					return err
				}
				if err := tx.SetRemove(setTokens, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(expired)
	}
}

// maxTokenLen bounds what is even looked up.
const maxTokenLen = 4096

// IssueToken makes a token for user, scoped to projectID when not empty (the user must hold
// a role there), expiring at expires (zero: now + DefaultTokenTTL). It returns the secret the
// client sends as X-Auth-Token; only its hash is stored.
func (id *Identity) IssueToken(ctx context.Context, u User, projectID string, methods []string, expires time.Time) (Token, string, error) {
	return id.issue(ctx, Token{UserID: u.ID, ProjectID: projectID}, methods, expires)
}

// IssueSystemToken makes a token for user scoped to the system; the user must hold a role
// on the system.
func (id *Identity) IssueSystemToken(ctx context.Context, u User, methods []string, expires time.Time) (Token, string, error) {
	roles, err := id.SystemRoles(ctx, u.ID)
	if err != nil {
		return Token{}, "", err
	}
	if len(roles) == 0 {
		return Token{}, "", fmt.Errorf("%w: no role on the system", ErrUnauthorized)
	}
	return id.issue(ctx, Token{UserID: u.ID, System: true}, methods, expires)
}

func (id *Identity) issue(ctx context.Context, t Token, methods []string, expires time.Time) (Token, string, error) {
	now := id.Now().UTC()
	if expires.IsZero() {
		expires = now.Add(DefaultTokenTTL)
	}
	u, projectID := User{ID: t.UserID}, t.ProjectID
	t.Methods, t.Issued, t.Expires, t.AuditID = methods, now, expires.UTC(), RandomSecret(16)
	if projectID != "" {
		if p, err := id.GetProject(ctx, projectID); err != nil || !p.Enabled {
			return t, "", fmt.Errorf("%w: project %s is not available", ErrUnauthorized, projectID)
		}
		roles, err := id.RolesOn(ctx, u.ID, projectID)
		if err != nil {
			return t, "", err
		}
		if len(roles) == 0 {
			return t, "", fmt.Errorf("%w: no role on project %s", ErrUnauthorized, projectID)
		}
	}
	secret := RandomSecret(32)
	err := id.meta.Update(ctx, func(tx meta.Tx) error {
		if err := tx.SetAdd(setTokens, tokenExpiryKey(t.Expires, secret)); err != nil {
			return err
		}
		if err := tx.SetAdd(keyUserTokens(u.ID), tokenExpiryKey(t.Expires, secret)); err != nil {
			return err
		}
		return putJSON(tx, keyToken(secret), t)
	})
	if err != nil {
		return t, "", fmt.Errorf("store token: %w", err)
	}
	t, err = id.ValidateToken(ctx, secret)
	return t, secret, err
}

// ValidateToken returns the token for secret, with its user, project and current roles. A
// token that is unknown, revoked, expired, or whose user or project is gone or disabled is
// ErrUnauthorized (ErrTokenExpired for an expired one).
func (id *Identity) ValidateToken(ctx context.Context, secret string) (Token, error) {
	var t Token
	if secret == "" || len(secret) > maxTokenLen {
		return t, ErrUnauthorized
	}
	err := id.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyToken(secret), &t) })
	if errors.Is(err, ErrNotFound) {
		return t, ErrUnauthorized
	}
	if err != nil {
		return t, err
	}
	if !id.Now().Before(t.Expires) {
		return t, ErrTokenExpired
	}
	if t.User, err = id.GetUser(ctx, t.UserID); err != nil || !t.User.Enabled {
		return t, ErrUnauthorized
	}
	if t.ProjectID != "" {
		if t.Project, err = id.GetProject(ctx, t.ProjectID); err != nil || !t.Project.Enabled {
			return t, ErrUnauthorized
		}
		if t.Roles, err = id.RolesOn(ctx, t.UserID, t.ProjectID); err != nil {
			return t, err
		}
		if len(t.Roles) == 0 {
			return t, ErrUnauthorized
		}
	}
	if t.System {
		// Roles as they are now: a revoked system role ends the token at once.
		if t.Roles, err = id.SystemRoles(ctx, t.UserID); err != nil {
			return t, err
		}
		if len(t.Roles) == 0 {
			return t, ErrUnauthorized
		}
	}
	return t, nil
}

// RevokeToken makes secret invalid at once.
func (id *Identity) RevokeToken(ctx context.Context, secret string) error {
	if _, err := id.ValidateToken(ctx, secret); err != nil {
		if IsAuthError(err) {
			return ErrNotFound
		}
		return err
	}
	return id.meta.Update(ctx, func(tx meta.Tx) error { return tx.Delete(keyToken(secret)) })
}

func keyUserTokens(userID string) string { return "usertokens:" + userID }

// revokeUserTokens drops every token of a user (password changed, user disabled or
// deleted), as Keystone does.
func revokeUserTokens(tx meta.Tx, userID string) error {
	keys, err := tx.SetRange(keyUserTokens(userID), "", 0)
	if err != nil {
		return err
	}
	for _, k := range keys {
		_, hash, _ := strings.Cut(k, "|")
		if err := tx.Delete("token:" + hash); err != nil {
			return err
		}
		if err := tx.SetRemove(keyUserTokens(userID), k); err != nil {
			return err
		}
	}
	return nil
}

// RandomSecret is n random bytes, URL-safe base64, never starting with '-': tokens and
// generated passwords are passed on command lines (`openstack token revoke <id>`), where
// one that starts with '-' reads as an option.
func RandomSecret(n int) string {
	b := make([]byte, n)
	for {
		rand.Read(b)
		if s := base64.RawURLEncoding.EncodeToString(b); s[0] != '-' {
			return s
		}
	}
}
