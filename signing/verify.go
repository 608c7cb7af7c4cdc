package signing

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Formats of a signature.
const (
	FormatTag      = "tag"      // cosign's sha256-<hex>.sig tag, simplesigning layers
	FormatReferrer = "referrer" // OCI 1.1 referrer, artifactType application/vnd.dev.cosign.artifact.sig.v1+json
	FormatBundle   = "bundle"   // sigstore bundle v0.3 referrer
	FormatNotation = "notation" // notary project signature: listed, never verified
)

// SignPredicateType is the only in-toto predicate a bundle counts as a signature with;
// cosign itself accepts any (a scan attestation would pass `cosign verify`).
const SignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// Signature is one signature found in the store, with the bytes verification needs.
type Signature struct {
	Format   string
	Artifact digest.Digest // the manifest holding it
	// Payload is the simplesigning payload (tag, referrer) or the bundle JSON (bundle).
	Payload []byte
	// Signature, Certificate and Chain are the simplesigning layer's annotations.
	Signature   string
	Certificate string
	Chain       string
}

// Result is what verifying one signature found.
type Result struct {
	Tool     string        `json:"tool"`
	Format   string        `json:"format"`
	Artifact digest.Digest `json:"artifact_digest"`
	Covers   digest.Digest `json:"covers"`
	// Counted: a cosign signature (not an attestation, not notation) that counts toward the
	// status, verified or not.
	Counted  bool   `json:"counted"`
	Verified bool   `json:"verified"`
	Signer   string `json:"signer,omitempty"`
	// Invalid: the signature is broken (wrong digest, tampered, malformed), not merely by
	// someone the project does not trust.
	Invalid bool   `json:"invalid,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// SigID identifies the signature value, so a value once verified and later seen over
	// other bytes is known as tampered.
	SigID string `json:"signature_id,omitempty"`
	// PayloadID identifies the bytes signed (SHA-256 of the payload or statement).
	PayloadID string `json:"payload_id,omitempty"`
}

// Verify checks s, a signature of subject, against t. It runs no network call.
func (t *Trust) Verify(ctx context.Context, subject digest.Digest, s Signature) Result {
	r := Result{Tool: "cosign", Format: s.Format, Artifact: s.Artifact, Covers: subject, Counted: true}
	switch s.Format {
	case FormatNotation:
		r.Tool, r.Counted, r.Reason = "notation", false, "notation signatures are listed, not verified"
		return r
	case FormatBundle:
		return t.verifyBundle(ctx, subject, s, r)
	}
	return t.verifySimple(ctx, subject, s, r)
}

func invalid(r Result, format string, a ...any) Result {
	r.Invalid, r.Reason = true, fmt.Sprintf(format, a...)
	return r
}

func untrusted(r Result, format string, a ...any) Result {
	r.Reason = fmt.Sprintf(format, a...)
	return r
}

func verified(r Result, signer string) Result {
	r.Verified, r.Signer, r.Reason = true, signer, ""
	return r
}

// simplePayload is cosign's simplesigning payload, as much of it as we check.
type simplePayload struct {
	Critical struct {
		Image struct {
			Digest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

func (t *Trust) verifySimple(ctx context.Context, subject digest.Digest, s Signature, r Result) Result {
	r.SigID, r.PayloadID = hashHex([]byte(s.Signature)), hashHex(s.Payload)
	var p simplePayload
	if err := json.Unmarshal(s.Payload, &p); err != nil || p.Critical.Type != "cosign container image signature" {
		return invalid(r, "the payload is no cosign simplesigning payload")
	}
	if p.Critical.Image.Digest != subject.String() {
		return invalid(r, "the payload claims digest %q, not %s", p.Critical.Image.Digest, subject)
	}
	if _, err := base64.StdEncoding.DecodeString(s.Signature); err != nil || s.Signature == "" {
		return invalid(r, "the signature annotation is no base64 signature")
	}
	h, err := v1.NewHash(subject.String())
	if err != nil {
		return invalid(r, "subject digest: %v", err)
	}
	if s.Certificate != "" {
		return t.verifySimpleCert(ctx, h, s, r)
	}
	for _, k := range t.keys {
		for _, v := range k.verifiers {
			sig, err := static.NewSignature(s.Payload, s.Signature)
			if err != nil {
				return invalid(r, "signature: %v", err)
			}
			co := &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier}
			if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
				return verified(r, k.name)
			}
		}
	}
	return untrusted(r, "no key the project trusts verifies the signature")
}

func (t *Trust) verifySimpleCert(ctx context.Context, h v1.Hash, s Signature, r Result) Result {
	leaf, err := parseLeaf([]byte(s.Certificate))
	if err != nil {
		return invalid(r, "certificate annotation: %v", err)
	}
	for _, ca := range t.authorities {
		for _, id := range ca.identities {
			sig, err := static.NewSignature(s.Payload, s.Signature, static.WithCertChain([]byte(s.Certificate), []byte(s.Chain)))
			if err != nil {
				return invalid(r, "signature: %v", err)
			}
			co := &cosign.CheckOpts{RootCerts: pool(ca.root), IntermediateCerts: pool(ca.intermediates...),
				Identities: []cosign.Identity{cosignIdentity(id)}, IgnoreSCT: true, IgnoreTlog: true,
				ClaimVerifier: cosign.SimpleClaimVerifier}
			if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
				return verified(r, ca.name+":"+subjectOf(leaf))
			}
		}
	}
	return t.certVerdict(r, leaf)
}

// certVerdict explains why a certificate signature did not verify: a certificate of a
// trusted CA with a trusted identity whose signature fails is broken; anything else is
// merely untrusted.
func (t *Trust) certVerdict(r Result, leaf *x509.Certificate) Result {
	for _, ca := range t.authorities {
		if !ca.issued(leaf) {
			continue
		}
		if ca.trusts(leaf) {
			return invalid(r, "the certificate of %s (authority %s) does not verify the signature", subjectOf(leaf), ca.name)
		}
		return untrusted(r, "identity %s (issuer %s) is not trusted by authority %s", subjectOf(leaf), issuerOf(leaf), ca.name)
	}
	return untrusted(r, "the certificate of %s is not issued by an authority the project trusts", subjectOf(leaf))
}

// bundleJSON is the part of a sigstore bundle read before verification.
type bundleJSON struct {
	VerificationMaterial struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		Certificate *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"certificate"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *struct {
		Payload    []byte `json:"payload"`
		Signatures []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

type statement struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

func (t *Trust) verifyBundle(ctx context.Context, subject digest.Digest, s Signature, r Result) Result {
	var bj bundleJSON
	if err := json.Unmarshal(s.Payload, &bj); err != nil || bj.DSSEEnvelope == nil || len(bj.DSSEEnvelope.Signatures) == 0 {
		return invalid(r, "the bundle holds no DSSE envelope")
	}
	r.SigID, r.PayloadID = hashHex([]byte(bj.DSSEEnvelope.Signatures[0].Sig)), hashHex(bj.DSSEEnvelope.Payload)
	var st statement
	if err := json.Unmarshal(bj.DSSEEnvelope.Payload, &st); err != nil {
		return invalid(r, "the bundle's statement is no in-toto statement")
	}
	if st.PredicateType != SignPredicateType {
		r.Counted = false
		return untrusted(r, "an attestation of predicate type %q, not a signature", st.PredicateType)
	}
	if !coversDigest(st, subject) {
		return invalid(r, "the statement does not name %s among its subjects", subject)
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(s.Payload); err != nil {
		return invalid(r, "bundle: %v", err)
	}
	raw, err := hex.DecodeString(subject.Encoded())
	if err != nil || subject.Algorithm() != digest.SHA256 {
		return invalid(r, "subject digest %s is no sha256 digest", subject)
	}
	policy := verify.WithArtifactDigest("sha256", raw)
	if bj.VerificationMaterial.Certificate != nil {
		return t.verifyBundleCert(ctx, bj.VerificationMaterial.Certificate.RawBytes, &b, policy, r)
	}
	empty, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, nil, nil)
	if err != nil {
		return invalid(r, "trusted root: %v", err)
	}
	hint := ""
	if bj.VerificationMaterial.PublicKey != nil {
		hint = bj.VerificationMaterial.PublicKey.Hint
	}
	for _, k := range t.keys {
		for _, v := range k.verifiers {
			co := &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, TrustedMaterial: empty}
			if _, err := cosign.VerifyNewBundle(ctx, co, policy, &b); err == nil {
				return verified(r, k.name)
			}
		}
		if hint != "" && hint == k.id {
			return invalid(r, "the bundle names key %s, whose signature does not verify", k.name)
		}
	}
	return untrusted(r, "no key the project trusts verifies the bundle")
}

func (t *Trust) verifyBundleCert(ctx context.Context, der []byte, b *sgbundle.Bundle, policy verify.ArtifactPolicyOption, r Result) Result {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return invalid(r, "bundle certificate: %v", err)
	}
	for _, ca := range t.authorities {
		for _, id := range ca.identities {
			co := &cosign.CheckOpts{TrustedMaterial: ca.material, Identities: []cosign.Identity{cosignIdentity(id)},
				IgnoreSCT: true, IgnoreTlog: true}
			if _, err := cosign.VerifyNewBundle(ctx, co, policy, b); err == nil {
				return verified(r, ca.name+":"+subjectOf(leaf))
			}
		}
	}
	return t.certVerdict(r, leaf)
}

func coversDigest(st statement, subject digest.Digest) bool {
	for _, s := range st.Subject {
		if s.Digest[subject.Algorithm().String()] == subject.Encoded() {
			return true
		}
	}
	return false
}

func cosignIdentity(id Identity) cosign.Identity {
	return cosign.Identity{Issuer: id.Issuer, Subject: id.Subject, IssuerRegExp: id.IssuerRegexp, SubjectRegExp: id.SubjectRegexp}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func parseLeaf(pemBytes []byte) (*x509.Certificate, error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(pemBytes)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%d certificates, want one", len(certs))
	}
	return certs[0], nil
}

// issued reports whether leaf chains to the CA for code signing, at its own start of
// validity (the signature may be older than today).
func (ca trustedCA) issued(leaf *x509.Certificate) bool {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool(ca.root), Intermediates: pool(ca.intermediates...),
		CurrentTime: leaf.NotBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
	return err == nil
}

// trusts reports whether one of the CA's identities matches leaf.
func (ca trustedCA) trusts(leaf *x509.Certificate) bool {
	sub, iss := subjectOf(leaf), issuerOf(leaf)
	for _, id := range ca.identities {
		if match(id.Subject, id.SubjectRegexp, sub) && match(id.Issuer, id.IssuerRegexp, iss) {
			return true
		}
	}
	return false
}

func match(exact, re, v string) bool {
	if re != "" {
		ok, _ := regexp.MatchString(re, v)
		return ok
	}
	return exact == v
}

func subjectOf(c *x509.Certificate) string {
	if s, err := certificate.SummarizeCertificate(c); err == nil && s.SubjectAlternativeName != "" {
		return s.SubjectAlternativeName
	}
	return c.Subject.String()
}

func issuerOf(c *x509.Certificate) string {
	if s, err := certificate.SummarizeCertificate(c); err == nil {
		return s.Extensions.Issuer
	}
	return ""
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
