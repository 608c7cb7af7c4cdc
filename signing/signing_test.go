package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

func pubPEM(t *testing.T, k crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// simpleSign signs a cosign simplesigning payload for d the way cosign's signer does
// (sigstore's default signer for the key: ECDSA SHA-256, RSA PKCS#1 v1.5, Ed25519ph).
func simpleSign(t *testing.T, priv crypto.Signer, d digest.Digest) Signature {
	t.Helper()
	payload := []byte(`{"critical":{"identity":{"docker-reference":"x/y"},"image":{"docker-manifest-digest":"` +
		d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	s, err := signature.LoadSignerWithOpts(priv, options.WithHash(crypto.SHA256), options.WithED25519ph())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(strings.NewReader(string(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return Signature{Format: FormatTag, Artifact: digest.FromString("sig"), Payload: payload,
		Signature: base64.StdEncoding.EncodeToString(sig)}
}

// TestVerifyKeys: each admitted key type verifies its own signature, names its key, and is
// untrusted for a key the policy does not hold; the claim digest is always checked.
func TestVerifyKeys(t *testing.T) {
	subject := digest.FromString("manifest")
	keys := map[string]crypto.Signer{}
	for name, gen := range map[string]func() (crypto.Signer, error){
		"p256":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"p384":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"p521":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"rsa2048": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		"ed25519": func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
	} {
		k, err := gen()
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var p Policy
	p.Mode = ModeEnforce
	for name, k := range keys {
		p.Keys = append(p.Keys, Key{Name: name, PublicKey: pubPEM(t, k.Public())})
	}
	trust, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, k := range keys {
		r := trust.Verify(ctx, subject, simpleSign(t, k, subject))
		if !r.Verified || r.Signer != name || !r.Counted {
			t.Errorf("%s: %+v, want verified by %s", name, r, name)
		}
		// The same signature checked against another manifest: invalid, whoever signed.
		if r := trust.Verify(ctx, digest.FromString("other"), simpleSign(t, k, subject)); r.Verified || !r.Invalid ||
			!strings.Contains(r.Reason, "claims digest") {
			t.Errorf("%s at another digest: %+v, want invalid naming the claim", name, r)
		}
	}
	if r := trust.Verify(ctx, subject, simpleSign(t, stranger, subject)); r.Verified || r.Invalid || r.Reason == "" {
		t.Errorf("a stranger's key: %+v, want untrusted", r)
	}
	s := simpleSign(t, keys["p256"], subject)
	s.Payload = []byte(strings.Replace(string(s.Payload), `"optional":null`, `"optional":{"a":"b"}`, 1))
	if r := trust.Verify(ctx, subject, s); r.Verified {
		t.Errorf("a changed payload: %+v, want not verified", r)
	}
	if r := trust.Verify(ctx, subject, Signature{Format: FormatNotation}); r.Counted || r.Tool != "notation" {
		t.Errorf("notation: %+v, want listed, not counted", r)
	}
}

// TestCompileRefuses: what a policy may not hold, each with its reason.
func TestCompileRefuses(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	ok, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for want, p := range map[string]Policy{
		"mode must be":      {Mode: "on"},
		"too short":         {Mode: "off", Keys: []Key{{Name: "k", PublicKey: pubPEM(t, &small.PublicKey)}}},
		"curve P-224":       {Mode: "off", Keys: []Key{{Name: "k", PublicKey: pubPEM(t, &p224.PublicKey)}}},
		"no PEM public key": {Mode: "off", Keys: []Key{{Name: "k", PublicKey: "x"}}},
		"used twice":        {Mode: "off", Keys: []Key{{Name: "k", PublicKey: pubPEM(t, &ok.PublicKey)}, {Name: "k", PublicKey: pubPEM(t, &ok.PublicKey)}}},
		"name":              {Mode: "off", Keys: []Key{{Name: "", PublicKey: pubPEM(t, &ok.PublicKey)}}},
		"certificate_chain": {Mode: "off", Authorities: []Authority{{Name: "a", CertificateChain: "x", Identities: []Identity{{Issuer: "i", Subject: "s"}}}}},
	} {
		if _, err := Compile(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%v): %v, want an error naming %q", p.Mode, err, want)
		}
	}
}
