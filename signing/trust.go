// Package signing verifies cosign signatures offline, from the bytes the registry already
// holds: the sha256-<hex>.sig tag scheme, the OCI 1.1 simplesigning referrer and the sigstore
// bundle v0.3 referrer, against a project's trusted keys and certificate authorities. It
// never calls the network (no Rekor, Fulcio or TUF) and never imports cosign's pkg/signature,
// which drags in Kubernetes clients.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Modes of a project's signing policy.
const (
	ModeOff     = "off"
	ModeWarn    = "warn"
	ModeEnforce = "enforce"
)

// Policy is a project's signing policy, as the REST API carries it.
type Policy struct {
	Mode        string      `json:"mode"`
	Keys        []Key       `json:"keys"`
	Authorities []Authority `json:"authorities"`
}

// Key is a trusted public key.
type Key struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// Authority is a trusted certificate authority with the identities it may vouch for.
type Authority struct {
	Name             string     `json:"name"`
	CertificateChain string     `json:"certificate_chain"`
	Identities       []Identity `json:"identities"`
}

// Identity matches a certificate's OIDC issuer and subject (SAN), exactly or by regexp.
type Identity struct {
	Issuer        string `json:"issuer,omitempty"`
	Subject       string `json:"subject,omitempty"`
	IssuerRegexp  string `json:"issuer_regexp,omitempty"`
	SubjectRegexp string `json:"subject_regexp,omitempty"`
}

// Limits of a policy, so one project cannot make every verification slow.
const (
	MaxKeys        = 32
	MaxAuthorities = 16
	MaxIdentities  = 32
	maxNameLen     = 128
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:/-]*$`)

// Trust is a validated, parsed policy, ready to verify with.
type Trust struct {
	Mode        string
	keys        []trustedKey
	authorities []trustedCA
}

type trustedKey struct {
	name string
	id   string // base64(SHA-256(DER SPKI)): the hint a bundle names its key by
	// verifiers are tried in order: cosign signs Ed25519 as Ed25519ph by default, older
	// versions as pure Ed25519; RSA as PKCS#1 v1.5, some tools as PSS.
	verifiers []signature.Verifier
}

type trustedCA struct {
	name          string
	root          *x509.Certificate
	intermediates []*x509.Certificate
	identities    []Identity
	material      root.TrustedMaterial
}

// Compile validates p and parses its keys and chains. Errors say what is wrong, for a 400.
func Compile(p Policy) (*Trust, error) {
	switch p.Mode {
	case ModeOff, ModeWarn, ModeEnforce:
	default:
		return nil, fmt.Errorf("mode must be off, warn or enforce, not %q", p.Mode)
	}
	if len(p.Keys) > MaxKeys || len(p.Authorities) > MaxAuthorities {
		return nil, fmt.Errorf("at most %d keys and %d authorities", MaxKeys, MaxAuthorities)
	}
	t := &Trust{Mode: p.Mode}
	names := map[string]bool{}
	for i, k := range p.Keys {
		if err := checkName(k.Name, names); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		tk, err := parseKey(k)
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): %w", i, k.Name, err)
		}
		t.keys = append(t.keys, tk)
	}
	for i, a := range p.Authorities {
		if err := checkName(a.Name, names); err != nil {
			return nil, fmt.Errorf("authorities[%d]: %w", i, err)
		}
		ca, err := parseAuthority(a)
		if err != nil {
			return nil, fmt.Errorf("authorities[%d] (%s): %w", i, a.Name, err)
		}
		t.authorities = append(t.authorities, ca)
	}
	return t, nil
}

func checkName(n string, seen map[string]bool) error {
	if len(n) == 0 || len(n) > maxNameLen || !nameRE.MatchString(n) {
		return fmt.Errorf("name %q must be 1-%d characters of letters, digits and ._@:/-", n, maxNameLen)
	}
	if seen[n] {
		return fmt.Errorf("name %q is used twice", n)
	}
	seen[n] = true
	return nil
}

func parseKey(k Key) (trustedKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(k.PublicKey))
	if err != nil {
		return trustedKey{}, fmt.Errorf("public_key is no PEM public key: %w", err)
	}
	if err := checkKeyType(pub); err != nil {
		return trustedKey{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return trustedKey{}, fmt.Errorf("public_key: %w", err)
	}
	sum := sha256.Sum256(der)
	tk := trustedKey{name: k.Name, id: base64.StdEncoding.EncodeToString(sum[:])}
	for _, opts := range verifierOptions(pub) {
		v, err := signature.LoadVerifierWithOpts(pub, opts...)
		if err != nil {
			return trustedKey{}, fmt.Errorf("public_key: %w", err)
		}
		tk.verifiers = append(tk.verifiers, v)
	}
	return tk, nil
}

// verifierOptions lists the ways a key of pub's type may have signed: cosign's default
// first.
func verifierOptions(pub crypto.PublicKey) [][]signature.LoadOption {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return [][]signature.LoadOption{{options.WithED25519ph()}, nil}
	case *rsa.PublicKey:
		return [][]signature.LoadOption{{options.WithHash(crypto.SHA256)},
			{options.WithHash(crypto.SHA256), options.WithRSAPSS(&rsa.PSSOptions{Hash: crypto.SHA256})}}
	case *ecdsa.PublicKey:
		// cosign hashes with SHA-256 whatever the curve; other signers with the curve's own.
		own := map[elliptic.Curve]crypto.Hash{elliptic.P384(): crypto.SHA384, elliptic.P521(): crypto.SHA512}
		out := [][]signature.LoadOption{{options.WithHash(crypto.SHA256)}}
		if h, ok := own[k.Curve]; ok {
			out = append(out, []signature.LoadOption{options.WithHash(h)})
		}
		return out
	}
	return nil
}

// checkKeyType admits the key types cosign signs with: ECDSA P-256/384/521, RSA of at least
// 2048 bits, Ed25519.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not allowed (P-256, P-384, P-521)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too short (at least 2048)", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("key type %T is not allowed (ECDSA, RSA, Ed25519)", pub)
}

func parseAuthority(a Authority) (trustedCA, error) {
	certs, err := parseChain(a.CertificateChain)
	if err != nil {
		return trustedCA{}, err
	}
	if len(a.Identities) == 0 || len(a.Identities) > MaxIdentities {
		return trustedCA{}, fmt.Errorf("identities: 1-%d needed, so a certificate proves who signed", MaxIdentities)
	}
	for j, id := range a.Identities {
		if err := checkIdentity(id); err != nil {
			return trustedCA{}, fmt.Errorf("identities[%d]: %w", j, err)
		}
	}
	// The chain is given leaf-most first, as PEM files list it; the last one is the root.
	rootCert := certs[len(certs)-1]
	var inter []*x509.Certificate
	for i := len(certs) - 2; i >= 0; i-- {
		inter = append(inter, certs[i])
	}
	ca := trustedCA{name: a.Name, root: rootCert, intermediates: inter, identities: a.Identities}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: rootCert, Intermediates: inter}}, nil, nil, nil)
	if err != nil {
		return trustedCA{}, fmt.Errorf("certificate_chain: %w", err)
	}
	ca.material = tr
	return ca, nil
}

// parseChain reads PEM certificates; every one must be a CA.
func parseChain(s string) ([]*x509.Certificate, error) {
	rest := []byte(s)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate_chain holds a %q block, only CERTIFICATE is allowed", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate_chain: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate_chain: %q is no CA certificate", c.Subject.String())
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("certificate_chain must be PEM certificates, intermediates first, root last")
	}
	return certs, nil
}

func checkIdentity(id Identity) error {
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return errors.New("exactly one of issuer and issuer_regexp is needed")
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return errors.New("exactly one of subject and subject_regexp is needed")
	}
	for _, re := range []string{id.IssuerRegexp, id.SubjectRegexp} {
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("bad regexp %q: %w", re, err)
		}
	}
	return nil
}
