package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/registry"
	"github.com/xloud/xloud-image/storage"
)

// registryService is the service name in registry tokens and challenges.
const registryService = "xloud-image"

// security is the wired identity, authentication and policy; nil with --auth none.
type security struct {
	identity      *auth.Identity
	authenticator *auth.Authenticator
	policy        *auth.Policy
}

// setupAuth builds the security of the configured --auth mode.
func setupAuth(ctx context.Context, c config, store *storage.Store) (*security, error) {
	switch c.Auth {
	case "none":
		slog.Warn("authentication is off (--auth none): anyone can read and write everything")
		return nil, nil
	case "embedded":
	default:
		return nil, fmt.Errorf("--auth %q: want embedded, keystone or none", c.Auth)
	}
	id := auth.NewIdentity(store.Meta())
	if err := bootstrapAdmin(ctx, c, id); err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner(ctx, store.Meta(), registryService)
	if err != nil {
		return nil, err
	}
	return &security{
		identity:      id,
		authenticator: &auth.Authenticator{Passwords: id, Tokens: id, Signer: signer},
		policy:        &auth.Policy{Directory: id, AnonymousPull: c.AnonymousPull},
	}, nil
}

// bootstrapAdmin creates the admin project and user on first start. Without a password
// given, one is generated and written to a 0600 file in the data directory; the log names
// the file, never the password.
func bootstrapAdmin(ctx context.Context, c config, id *auth.Identity) error {
	need, err := id.NeedsBootstrap(ctx)
	if err != nil || !need {
		return err
	}
	pw := c.AdminPassword
	if pw == "" {
		b := make([]byte, 18)
		rand.Read(b)
		pw = base64.RawURLEncoding.EncodeToString(b)
		path := filepath.Join(c.DataDir, "admin-password")
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin password: %w", err)
		}
		slog.Info("created the admin user with a generated password", "password_file", path)
	} else {
		slog.Info("created the admin user with the given password")
	}
	_, err = id.Bootstrap(ctx, pw)
	return err
}

func (s *security) registryAccess() *registry.Access {
	if s == nil {
		return nil
	}
	return &registry.Access{Authenticator: s.authenticator, Policy: s.policy, Service: registryService}
}

// mountIdentity serves the Keystone v3 subset on the API port.
func (s *security) mountIdentity(mux *http.ServeMux) {
	if s == nil {
		return
	}
}

// imagePolicy is the policy the catalog applies. With --auth none nobody is refused (every
// caller is an admin), so only the directory matters.
func (s *security) imagePolicy() *auth.Policy {
	if s == nil {
		return &auth.Policy{Directory: openDirectory{}}
	}
	return s.policy
}

// openDirectory is the directory of --auth none: no projects, no roles.
type openDirectory struct{}

func (openDirectory) GetProject(context.Context, string) (auth.Project, error) {
	return auth.Project{}, auth.ErrNotFound
}

func (openDirectory) ProjectByName(context.Context, string) (auth.Project, error) {
	return auth.Project{}, auth.ErrNotFound
}

func (openDirectory) RolesOn(context.Context, string, string) ([]auth.Role, error) { return nil, nil }
