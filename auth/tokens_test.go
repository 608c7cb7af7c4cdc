package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

func newTestIdentity(t *testing.T) *Identity {
	t.Helper()
	m, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return NewIdentity(m)
}

func TestTokensExpireRevokeAndPurge(t *testing.T) {
	ctx := context.Background()
	id := newTestIdentity(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	id.Now = func() time.Time { return now }
	p, _ := id.CreateProject(ctx, Project{Name: "p", Enabled: true})
	u, _ := id.CreateUser(ctx, User{Name: "u", Enabled: true}, "pw")
	if _, _, err := id.IssueToken(ctx, u, p.ID, []string{"password"}, time.Time{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("token scoped to a project without a role: %v", err)
	}
	id.Grant(ctx, u.ID, p.ID, RoleReader)
	tok, secret, err := id.IssueToken(ctx, u, p.ID, []string{"password"}, time.Time{})
	if err != nil || len(tok.Roles) != 1 || tok.Roles[0] != RoleReader {
		t.Fatalf("issue: %+v %v", tok, err)
	}
	_, short, _ := id.IssueToken(ctx, u, "", []string{"password"}, now.Add(time.Minute))
	// A role revoked takes effect at once.
	id.Revoke(ctx, u.ID, p.ID, RoleReader)
	if _, err := id.ValidateToken(ctx, secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("token after its role was revoked: %v", err)
	}
	id.Grant(ctx, u.ID, p.ID, RoleMember)
	if tok, err := id.ValidateToken(ctx, secret); err != nil || tok.Roles[0] != RoleMember {
		t.Fatalf("roles are read at validation: %+v %v", tok, err)
	}
	// Expiry.
	now = now.Add(2 * time.Minute)
	if _, err := id.ValidateToken(ctx, short); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	if n, err := id.PurgeExpiredTokens(ctx, now); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := id.ValidateToken(ctx, short); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("purged token: %v", err)
	}
	if _, err := id.ValidateToken(ctx, secret); err != nil {
		t.Fatalf("live token purged: %v", err)
	}
	// Revocation.
	if err := id.RevokeToken(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := id.ValidateToken(ctx, secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked token: %v", err)
	}
	// A password change revokes the user's tokens.
	_, s1, _ := id.IssueToken(ctx, u, "", nil, time.Time{})
	id.UpdateUser(ctx, u.ID, "new password", func(*User) error { return nil })
	if _, err := id.ValidateToken(ctx, s1); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("token after a password change: %v", err)
	}
	// Disabled users' tokens stop working.
	_, s2, _ := id.IssueToken(ctx, u, "", nil, time.Time{})
	id.UpdateUser(ctx, u.ID, "", func(u *User) error { u.Enabled = false; return nil })
	if _, err := id.ValidateToken(ctx, s2); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("token of a disabled user: %v", err)
	}
}

func TestPasswords(t *testing.T) {
	ctx := context.Background()
	id := newTestIdentity(t)
	id.CreateUser(ctx, User{Name: "Alice", Enabled: true}, "correct horse")
	if _, err := id.Authenticate(ctx, "alice", "correct horse"); err != nil {
		t.Fatalf("case-insensitive user name: %v", err)
	}
	for _, c := range []struct{ user, pw string }{{"alice", "wrong"}, {"bob", "correct horse"}, {"alice", ""},
		{"alice", "correct horse" + string(make([]byte, 80))}} {
		if _, err := id.Authenticate(ctx, c.user, c.pw); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%q/%q: %v", c.user, c.pw, err)
		}
	}
	if _, err := id.CreateUser(ctx, User{Name: "alice"}, "x"); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := id.CreateUser(ctx, User{Name: "long"}, string(make([]byte, 100))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("overlong password: %v", err)
	}
	u, _ := id.UserByName(ctx, "alice")
	var stored User
	id.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyUser(u.ID), &stored) })
	if stored.PasswordHash == "" || stored.PasswordHash == "correct horse" {
		t.Fatal("password not hashed")
	}
}
