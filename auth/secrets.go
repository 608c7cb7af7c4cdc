package auth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/storage/meta"
)

// Secret is a key-manager secret (Barbican's secret resource): bytes a project keeps, such as
// the certificate Glance's img_signature_certificate_uuid names. The payload is stored as
// given, decoded; ContentType says what it is (text/plain or a binary type).
type Secret struct {
	ID          string     `json:"id"`
	ProjectID   string     `json:"project_id"`
	CreatorID   string     `json:"creator_id"`
	Name        string     `json:"name,omitempty"`
	SecretType  string     `json:"secret_type"`
	Algorithm   string     `json:"algorithm,omitempty"`
	BitLength   *int       `json:"bit_length,omitempty"`
	Mode        string     `json:"mode,omitempty"`
	Expiration  *time.Time `json:"expiration,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
	Payload     []byte     `json:"payload,omitempty"`
	Created     time.Time  `json:"created"`
}

// Expired reports whether the secret's expiration has passed at now.
func (s Secret) Expired(now time.Time) bool { return s.Expiration != nil && !now.Before(*s.Expiration) }

// SecretTypes are Barbican's secret types.
var SecretTypes = []string{"symmetric", "public", "private", "passphrase", "certificate", "opaque"}

// MaxSecretBytes bounds a decoded payload (Barbican's max_allowed_secret_in_bytes).
const MaxSecretBytes = 10000

// Secrets keeps key-manager secrets in the metadata store, one namespace per project. It
// checks nothing about callers: the door asks Policy.AllowSecret first.
//
//	secret:<uuid>                 Secret
//	set secrets:<project>         the project's secrets as <created, 16 hex>|<uuid>
type Secrets struct {
	Meta meta.Store
	// Now is replaceable in tests.
	Now func() time.Time
}

// NewSecrets returns the secrets kept in m.
func NewSecrets(m meta.Store) *Secrets { return &Secrets{Meta: m, Now: time.Now} }

func keySecret(id string) string              { return "secret:" + id }
func setProjectSecrets(project string) string { return "secrets:" + project }
func secretMember(s Secret) string {
	return fmt.Sprintf("%016x|%s", uint64(s.Created.UnixNano())&math.MaxInt64, s.ID)
}

// Create stores s under a new id, owned by s.ProjectID and created by s.CreatorID. A secret
// needs a project, a known type, a payload within MaxSecretBytes and an expiration in the
// future (or none); anything else is ErrInvalid.
func (st *Secrets) Create(ctx context.Context, s Secret) (Secret, error) {
	now := st.Now().UTC()
	if s.SecretType == "" {
		s.SecretType = "opaque"
	}
	switch {
	case s.ProjectID == "":
		return Secret{}, fmt.Errorf("%w: a secret belongs to a project: use a project-scoped token", ErrInvalid)
	case !validSecretType(s.SecretType):
		return Secret{}, fmt.Errorf("%w: secret_type %q is not one of %s", ErrInvalid, s.SecretType, strings.Join(SecretTypes, ", "))
	case len(s.Payload) == 0:
		return Secret{}, fmt.Errorf("%w: the secret has no payload", ErrInvalid)
	case len(s.Payload) > MaxSecretBytes:
		return Secret{}, fmt.Errorf("%w: the payload is larger than %d bytes", ErrInvalid, MaxSecretBytes)
	case len(s.Name) > 255 || strings.ContainsAny(s.Name, "\x00"):
		return Secret{}, fmt.Errorf("%w: name must be at most 255 characters", ErrInvalid)
	case s.Expiration != nil && !s.Expiration.After(now):
		return Secret{}, fmt.Errorf("%w: 'expiration' is before current time", ErrInvalid)
	}
	s.ID = newUUID()
	s.Created = now // full precision: it orders the listing
	err := st.Meta.Update(ctx, func(tx meta.Tx) error {
		if err := putJSON(tx, keySecret(s.ID), s); err != nil {
			return err
		}
		return tx.SetAdd(setProjectSecrets(s.ProjectID), secretMember(s))
	})
	if err != nil {
		return Secret{}, fmt.Errorf("store secret: %w", err)
	}
	return s, nil
}

func validSecretType(t string) bool { return slices.Contains(SecretTypes, t) }

// newUUID is a random UUID; Barbican's clients insist on one in every secret reference.
func newUUID() string {
	u, err := uuid.NewRandomFromReader(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return u.String()
}

// Get returns a secret; a missing or expired one is ErrNotFound.
func (st *Secrets) Get(ctx context.Context, id string) (Secret, error) {
	if uuid.Validate(id) != nil {
		return Secret{}, ErrNotFound
	}
	var s Secret
	err := st.Meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keySecret(id), &s) })
	if err != nil {
		return Secret{}, err
	}
	if s.Expired(st.Now()) {
		return Secret{}, ErrNotFound
	}
	return s, nil
}

// List returns a project's secrets oldest first, skipping offset and returning at most
// limit (limit <= 0: all), with the total count. Expired secrets are counted and listed as
// Barbican lists them until they are removed.
func (st *Secrets) List(ctx context.Context, project string, offset, limit int) ([]Secret, int, error) {
	var out []Secret
	var total int64
	err := st.Meta.View(ctx, func(tx meta.Tx) error {
		out = nil
		var err error
		if total, err = tx.SetLen(setProjectSecrets(project)); err != nil {
			return err
		}
		members, err := tx.SetRange(setProjectSecrets(project), "", 0)
		if err != nil {
			return err
		}
		for i, m := range members {
			if i < offset || (limit > 0 && len(out) >= limit) {
				continue
			}
			_, id, _ := strings.Cut(m, "|")
			var s Secret
			if err := getJSON(tx, keySecret(id), &s); err != nil {
				return fmt.Errorf("secret %s of project %s: %w", id, project, err)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, int(total), err
}

// Delete removes a secret; a missing one is ErrNotFound.
func (st *Secrets) Delete(ctx context.Context, id string) error {
	return st.Meta.Update(ctx, func(tx meta.Tx) error {
		var s Secret
		if err := getJSON(tx, keySecret(id), &s); err != nil {
			return err
		}
		if err := tx.Delete(keySecret(id)); err != nil {
			return err
		}
		return tx.SetRemove(setProjectSecrets(s.ProjectID), secretMember(s))
	})
}

// errNoSecret is what a caller who may not see a secret is told: that it does not exist.
var errNoSecret = fmt.Errorf("%w: secret", ErrNotFound)

// ReadSecret returns the secret id for pr to act on with act (SecretGet or SecretDecrypt):
// a secret pr may not see is ErrNotFound, as a missing one is; one pr may see but not act on
// is ErrForbidden.
func (p *Policy) ReadSecret(ctx context.Context, st *Secrets, pr Principal, id string, act SecretAction) (Secret, error) {
	s, err := st.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Secret{}, errNoSecret
	}
	if err != nil {
		return Secret{}, err
	}
	if err := p.AllowSecret(ctx, pr, act, s); err != nil {
		return Secret{}, err
	}
	return s, nil
}

// Certificates reads X.509 certificates kept as key-manager secrets, as Glance's
// img_signature_certificate_uuid names them (castellan's certificate: DER, or PEM).
type Certificates struct {
	Secrets *Secrets
	Policy  *Policy
}

// Certificate returns the certificate the secret id holds, read as pr: pr must be allowed to
// read the secret's payload. A secret pr may not see, or that does not exist, is
// ErrNotFound; one that holds no certificate is ErrInvalid.
func (c Certificates) Certificate(ctx context.Context, pr Principal, id string) (*x509.Certificate, error) {
	s, err := c.Policy.ReadSecret(ctx, c.Secrets, pr, id, SecretDecrypt)
	if err != nil {
		return nil, err
	}
	der := s.Payload
	if b, _ := pem.Decode(der); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: secret %s holds a PEM %s, not a certificate", ErrInvalid, id, b.Type)
		}
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s holds no X.509 certificate: %v", ErrInvalid, id, err)
	}
	return cert, nil
}
