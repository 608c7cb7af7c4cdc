package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/auth/identityapi"
	"github.com/xloud/xloud-image/auth/keymanager"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/dashboard"
	"github.com/xloud/xloud-image/metadefs"
	"github.com/xloud/xloud-image/registry"
	"github.com/xloud/xloud-image/storage"
)

// registryService is the service name in registry tokens and challenges.
const registryService = "xloud-image"

// security is the wired identity, authentication and policy; nil with --auth none.
type security struct {
	identity      *auth.Identity
	limits        catalog.LimitSource // --auth keystone: Keystone's unified limits
	authenticator *auth.Authenticator
	policy        *auth.Policy
	throttle      *auth.Throttle
	// signIn issues the dashboard's tokens for a user name and password.
	signIn auth.SignIn
	// secrets are the key-manager's (Barbican subset), per project in the metadata store.
	secrets *auth.Secrets
}

// setupAuth builds the security of the configured --auth mode.
func setupAuth(ctx context.Context, c config, store *storage.Store) (*security, error) {
	switch c.Auth {
	case "none":
		slog.Warn("authentication is off (--auth none): anyone can read and write everything")
		return nil, nil
	case "embedded":
	case "keystone":
		return setupKeystone(ctx, c, store)
	default:
		return nil, fmt.Errorf("--auth %q: want embedded, keystone or none", c.Auth)
	}
	id := auth.NewIdentity(store.Meta())
	if err := bootstrapAdmin(ctx, c, id); err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner(ctx, store.Meta(), registryService, c.Cluster.TokenKeyRotation)
	if err != nil {
		return nil, err
	}
	th := throttle(c, store)
	facts := catalog.NewFacts(store)
	return &security{
		identity:      id,
		authenticator: &auth.Authenticator{Passwords: id, Tokens: id, Signer: signer, Throttle: th},
		policy:        &auth.Policy{Directory: id, AnonymousPull: c.AnonymousPull, Content: facts, Signatures: facts},
		throttle:      th,
		secrets:       auth.NewSecrets(store.Meta()),
		signIn:        auth.IdentitySignIn{Identity: id, Throttle: th},
	}, nil
}

// setupKeystone builds the security of --auth keystone: tokens, passwords and the policy's
// questions go to the external Keystone (no identity is kept here, and /identity/v3 is not
// served); the registry token signing key still lives in the metadata store. Refused
// service credentials stop the start; an unreachable Keystone is retried on use.
func setupKeystone(ctx context.Context, c config, store *storage.Store) (*security, error) {
	ks, err := auth.NewKeystone(auth.KeystoneConfig{
		URL: c.KeystoneURL, User: c.KeystoneUser, Password: c.KeystonePassword, Project: c.KeystoneProject,
		UserDomain: c.KeystoneDomain, ProjectDomain: c.KeystoneDomain, CacheTTL: c.KeystoneCacheTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("--auth keystone: %w", err)
	}
	signInCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := ks.SignIn(signInCtx); errors.Is(err, auth.ErrServiceCredentials) {
		return nil, fmt.Errorf("--auth keystone: %w", err)
	} else if err != nil {
		slog.Warn("keystone unreachable at start; retried on use", "url", c.KeystoneURL, "err", err)
	}
	signer, err := auth.NewSigner(ctx, store.Meta(), registryService, c.Cluster.TokenKeyRotation)
	if err != nil {
		return nil, err
	}
	slog.Info("authenticating with keystone", "url", c.KeystoneURL, "service_user", c.KeystoneUser,
		"cache_ttl", c.KeystoneCacheTTL.String())
	// Keystone has lockouts of its own; ours also spares it the guesses.
	th := throttle(c, store)
	facts := catalog.NewFacts(store)
	return &security{
		authenticator: &auth.Authenticator{Passwords: ks, Tokens: ks, Signer: signer, Throttle: th},
		policy:        &auth.Policy{Directory: ks, AnonymousPull: c.AnonymousPull, Content: facts, Signatures: facts},
		throttle:      th,
		// Read as oslo.limit reads them, cached briefly so a changed limit applies soon.
		limits:  &auth.KeystoneLimits{Keystone: ks, ServiceType: "image", TTL: min(c.KeystoneCacheTTL, 10*time.Second)},
		secrets: auth.NewSecrets(store.Meta()),
		signIn:  auth.KeystoneSignIn{Keystone: ks, Throttle: th},
	}, nil
}

// throttle is the password lockout of the --lockout-* flags; nil when both are off.
func throttle(c config, store *storage.Store) *auth.Throttle {
	l := c.Limits
	if l.LockoutUser == 0 && l.LockoutAddress == 0 {
		return nil
	}
	return &auth.Throttle{Store: store.Meta(), UserAttempts: l.LockoutUser, AddrAttempts: l.LockoutAddress,
		Duration: l.LockoutDuration, Now: time.Now}
}

// bootstrapAdmin creates the admin project and user on first start. Without a password
// given, one is generated and written to a 0600 file in the data directory; the log names
// the file, never the password.
func bootstrapAdmin(ctx context.Context, c config, id *auth.Identity) error {
	need, err := id.NeedsBootstrap(ctx)
	if err != nil || !need {
		return err
	}
	pw, path := c.AdminPassword, ""
	if pw == "" {
		pw = auth.RandomSecret(18)
		path = filepath.Join(c.DataDir, "admin-password")
		// Written before the user exists, so a crash between the two leaves no admin whose
		// password nobody knows.
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin password: %w", err)
		}
	}
	created, err := id.Bootstrap(ctx, pw)
	switch {
	case err != nil:
		return err
	case !created && path != "":
		// Another node of the cluster made the admin first: this password is not its.
		os.Remove(path)
		slog.Info("the admin user was created by another node; its password file is on that node")
	case !created:
		slog.Info("the admin user was created by another node")
	case path != "":
		slog.Info("created the admin user with a generated password", "password_file", path)
	default:
		slog.Info("created the admin user with the given password")
	}
	return nil
}

func (s *security) registryAccess() *registry.Access {
	if s == nil {
		return nil
	}
	return &registry.Access{Authenticator: s.authenticator, Policy: s.policy, Service: registryService}
}

// mountIdentity serves the Keystone v3 subset on the API port. Its catalog advertises the
// Registry API at --public-url (the registry's advertised base, as in its token realm) or,
// failing that, at the host a client reached the API at with the --registry-addr port.
func (s *security) mountIdentity(mux *http.ServeMux, c config) {
	if s == nil || s.identity == nil {
		return
	}
	opt := identityapi.Options{Identity: s.identity, Policy: s.policy, RegistryURL: c.PublicURL,
		PublicURL: c.APIPublicURL, Throttle: s.throttle, KeyManager: true}
	if _, port, err := net.SplitHostPort(c.RegistryAddr); err == nil {
		opt.RegistryPort = port
	}
	h := identityapi.New(opt)
	mux.Handle("/identity", h)
	mux.Handle("/identity/", h)
}

// limitSource is where the catalog reads the projects' unified limits: Keystone with --auth
// keystone, else the embedded identity's store (the Image service's limits in its one
// region); none without identity.
func (s *security) limitSource() catalog.LimitSource {
	if s != nil && s.limits != nil {
		return s.limits
	}
	if s == nil || s.identity == nil {
		return nil
	}
	return auth.ServiceLimits{Limits: s.identity.Limits(), ServiceID: identityapi.ServiceID("image"), Region: "RegionOne"}
}

// mountKeyManager serves the key-manager (Barbican secrets subset) at /key-manager on the
// API port, beside the identity API that lists it in its catalog. With --auth keystone it is
// served too (tokens validated by Keystone); clients find it there when Keystone's catalog
// lists it.
func (s *security) mountKeyManager(mux *http.ServeMux, c config) {
	if s == nil {
		return
	}
	h := keymanager.New(keymanager.Options{Secrets: s.secrets, Authenticator: s.authenticator,
		Policy: s.policy, PublicURL: c.APIPublicURL})
	mux.Handle(keymanager.Prefix, h)
	mux.Handle(keymanager.Prefix+"/", h)
}

// certificates are where Glance image signatures find their certificates: our key manager
// (with an external Keystone too); nil with --auth none, which serves no key manager.
func (s *security) certificates() catalog.CertificateSource {
	if s == nil {
		return nil
	}
	return auth.Certificates{Secrets: s.secrets, Policy: s.policy}
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

// purgeTokensEvery is how often expired tokens are removed from the store.
const purgeTokensEvery = 10 * time.Minute

// purge removes expired tokens and lockout records (one node at a time: startChores).
func (s *security) purge(ctx context.Context) {
	if s.identity != nil {
		if n, err := s.identity.PurgeExpiredTokens(ctx, time.Now()); err != nil {
			slog.Warn("purge expired tokens", "err", err)
		} else if n > 0 {
			slog.Info("purged expired tokens", "count", n)
		}
	}
	if s.throttle != nil {
		if _, err := s.throttle.Sweep(ctx); err != nil {
			slog.Warn("sweep lockout records", "err", err)
		}
	}
}

// mountDashboard serves the dashboard at /dashboard/ on the API port, signed in with the
// identity the APIs use. With --auth none there is nobody to sign in: it is not served.
func (s *security) mountDashboard(mux *http.ServeMux, cat *catalog.Catalog, store *storage.Store, md *metadefs.Store,
	web *catalog.WebDownloader, regHost, regPort string) error {
	if s == nil {
		return nil
	}
	d, err := dashboard.New(dashboard.Options{Catalog: cat, SignIn: s.signIn, Tokens: s.authenticator.Tokens,
		Meta: store.Meta(), Metadefs: md, Web: web, RegistryHost: func(r *http.Request) string {
			if regHost != "" || regPort == "" {
				return regHost
			}
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			return net.JoinHostPort(host, regPort)
		}})
	if err != nil {
		return err
	}
	mux.Handle(dashboard.Prefix+"/", d)
	mux.Handle("GET "+dashboard.Prefix, http.RedirectHandler(dashboard.Prefix+"/", http.StatusMovedPermanently))
	return nil
}
