package auth

import (
	"context"
	"errors"
	"testing"
)

// TestIdentitySignIn: a token for the project named or the first one, refusals alike for an
// unknown user, a wrong password and a project without a role, rescoping and revocation.
func TestIdentitySignIn(t *testing.T) {
	ctx := context.Background()
	id := newTestIdentity(t)
	a, _ := id.CreateProject(ctx, Project{Name: "alpha", Enabled: true})
	b, _ := id.CreateProject(ctx, Project{Name: "beta", Enabled: true})
	c, _ := id.CreateProject(ctx, Project{Name: "gamma", Enabled: true})
	u, _ := id.CreateUser(ctx, User{Name: "alice", Enabled: true}, "pw")
	id.Grant(ctx, u.ID, b.ID, RoleMember)
	id.Grant(ctx, u.ID, a.ID, RoleReader)
	s := IdentitySignIn{Identity: id}

	ps, err := s.UserProjects(ctx, u.ID)
	if err != nil || len(ps) != 2 || ps[0].Name != "alpha" || ps[1].Name != "beta" {
		t.Fatalf("projects: %+v %v", ps, err)
	}
	for _, tc := range []struct{ user, pw, project, want string }{
		{"alice", "pw", "beta", b.ID}, {"alice", "pw", b.ID, b.ID}, {"alice", "pw", "", a.ID},
	} {
		secret, tok, err := s.PasswordToken(ctx, "127.0.0.1:1", tc.user, tc.pw, tc.project)
		if err != nil || tok.ProjectID != tc.want {
			t.Fatalf("sign in to %q: %+v %v", tc.project, tok, err)
		}
		if v, err := id.ValidateToken(ctx, secret); err != nil || v.ProjectID != tc.want {
			t.Fatalf("the token of a sign-in to %q: %+v %v", tc.project, v, err)
		}
	}
	for _, tc := range []struct{ user, pw, project string }{
		{"alice", "wrong", "beta"}, {"nobody", "pw", "beta"}, {"alice", "pw", "gamma"}, {"alice", "pw", c.ID}, {"alice", "pw", "nope"},
	} {
		if _, _, err := s.PasswordToken(ctx, "127.0.0.1:1", tc.user, tc.pw, tc.project); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("sign in %s/%s to %q: %v, want ErrUnauthorized", tc.user, tc.pw, tc.project, err)
		}
	}
	secret, _, _ := s.PasswordToken(ctx, "127.0.0.1:1", "alice", "pw", "alpha")
	other, tok, err := s.Rescope(ctx, secret, "beta")
	if err != nil || tok.ProjectID != b.ID || len(tok.Roles) != 1 || tok.Roles[0] != RoleMember {
		t.Fatalf("rescope: %+v %v", tok, err)
	}
	if _, _, err := s.Rescope(ctx, secret, "gamma"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("rescope to a project without a role: %v", err)
	}
	if err := s.RevokeToken(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := id.ValidateToken(ctx, secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a revoked token: %v", err)
	}
	if _, err := id.ValidateToken(ctx, other); err != nil {
		t.Fatalf("revoking one token ended another: %v", err)
	}
	if _, _, err := s.Rescope(ctx, secret, "beta"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("rescope of a revoked token: %v", err)
	}
}
