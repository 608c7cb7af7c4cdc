package catalog

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	// The hashes Glance's img_signature_hash_method names.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/xloud/xloud-image/auth"
)

// Glance's image signature properties (cursive/signature_utils.py). With all four set, the
// image data is verified while it streams in; with any missing it is not.
const (
	PropSignature     = "img_signature"
	PropSignatureHash = "img_signature_hash_method"
	PropSignatureKey  = "img_signature_key_type"
	PropSignatureCert = "img_signature_certificate_uuid"
)

// CertificateSource fetches the certificate a certificate UUID names from the key manager,
// as pr may read it: auth.Certificates over our Barbican subset. A missing or hidden one is
// an error matching auth.ErrNotFound.
type CertificateSource interface {
	Certificate(ctx context.Context, pr auth.Principal, id string) (*x509.Certificate, error)
}

// signatureHashes are the hash methods cursive allows.
var signatureHashes = map[string]crypto.Hash{
	"SHA-224": crypto.SHA224, "SHA-256": crypto.SHA256, "SHA-384": crypto.SHA384, "SHA-512": crypto.SHA512,
}

// signatureCurves are the ECC_<curve> key types we verify: cursive registers the SECP and
// SECT curves above 384 bits the backend supports; Go has no binary (SECT) curves, and current
// cryptography dropped them too. DSA is not offered (Go's crypto/dsa is deprecated).
var signatureCurves = map[string]elliptic.Curve{
	"ECC_SECP384R1": elliptic.P384(), "ECC_SECP521R1": elliptic.P521(),
}

// keyTypeRSAPSS is the key type openstack image create --sign-key-path writes.
const keyTypeRSAPSS = "RSA-PSS"

// glanceVerifier checks an image's data against its img_signature as it streams by: the
// digest is computed by the hash (a sink of the upload), the signature checked at the end,
// before anything is committed.
type glanceVerifier struct {
	imageID string
	h       hash.Hash
	algo    crypto.Hash
	keyType string
	sig     []byte
	key     crypto.PublicKey
}

// signatureRefused is the refusal Glance answers with 400 (SignatureVerificationError).
func signatureRefused(format string, a ...any) *Error {
	return &Error{Kind: BadRequest, Message: "Signature verification failed: " + fmt.Sprintf(format, a...)}
}

// glanceVerifier returns the verifier of img's signature properties, read as pr (the
// uploader: the certificate must be theirs to read), or nil when the four properties are not
// all set. Bad properties, an unknown or unreadable certificate, one outside its validity
// period or whose key does not match the key type are refused here, before any byte is read.
func (c *Catalog) glanceVerifier(ctx context.Context, pr auth.Principal, img Image) (*glanceVerifier, error) {
	p := img.Properties
	for _, k := range []string{PropSignature, PropSignatureHash, PropSignatureKey, PropSignatureCert} {
		if _, ok := p[k]; !ok {
			return nil, nil
		}
	}
	algo, ok := signatureHashes[p[PropSignatureHash]]
	if !ok {
		return nil, signatureRefused("Invalid signature hash method: %s", p[PropSignatureHash])
	}
	keyType := p[PropSignatureKey]
	if _, ecc := signatureCurves[keyType]; !ecc && keyType != keyTypeRSAPSS {
		return nil, signatureRefused("Invalid signature key type: %s", keyType)
	}
	sig, err := base64.StdEncoding.DecodeString(signatureText(p[PropSignature]))
	if err != nil || len(sig) == 0 {
		return nil, signatureRefused("The signature data was not properly encoded using base64")
	}
	cert, err := c.signingCertificate(ctx, pr, p[PropSignatureCert])
	if err != nil {
		return nil, err
	}
	if err := publicKeyMatches(cert.PublicKey, keyType); err != nil {
		return nil, err
	}
	return &glanceVerifier{imageID: img.ID, h: algo.New(), algo: algo, keyType: keyType, sig: sig, key: cert.PublicKey}, nil
}

// signatureText is the base64 of an img_signature. python-openstackclient 6.x stores the
// repr of Python bytes (b'…') from `image create --sign-key-path`, so that form is unwrapped
// for the documented command to work.
func signatureText(s string) string {
	if len(s) >= 3 && strings.HasPrefix(s, "b'") && strings.HasSuffix(s, "'") {
		return s[2 : len(s)-1]
	}
	return s
}

// signingCertificate fetches the certificate id and checks it is valid now (cursive's
// verify_certificate); Glance, like cursive by default, does not check a chain.
func (c *Catalog) signingCertificate(ctx context.Context, pr auth.Principal, id string) (*x509.Certificate, error) {
	if c.Certificates == nil {
		return nil, signatureRefused("Unable to retrieve certificate with ID: %s: no key manager is configured", id)
	}
	cert, err := c.Certificates.Certificate(ctx, pr, id)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return nil, signatureRefused("Certificate not found with ID: %s", id)
	case errors.Is(err, auth.ErrInvalid) || errors.Is(err, auth.ErrForbidden):
		return nil, &Error{Kind: BadRequest, Message: "Signature verification failed: Unable to retrieve certificate with ID: " + id, Err: err}
	case err != nil:
		return nil, fmt.Errorf("retrieve certificate %s: %w", id, err)
	}
	now := c.Now()
	if now.Before(cert.NotBefore) {
		return nil, signatureRefused("Certificate is not valid before: %s UTC", cert.NotBefore.UTC().Format(time.DateTime))
	}
	if now.After(cert.NotAfter) {
		return nil, signatureRefused("Certificate is not valid after: %s UTC", cert.NotAfter.UTC().Format(time.DateTime))
	}
	return cert, nil
}

// publicKeyMatches refuses a certificate whose key is not of the signature's key type.
func publicKeyMatches(key crypto.PublicKey, keyType string) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if keyType == keyTypeRSAPSS {
			return nil
		}
	case *ecdsa.PublicKey:
		if curve, ok := signatureCurves[keyType]; ok && k.Curve == curve {
			return nil
		}
	}
	return signatureRefused("Invalid public key type for signature key type: %s", keyType)
}

// verify checks the signature over the digest of everything written to the hash.
func (v *glanceVerifier) verify() error {
	digest := v.h.Sum(nil)
	var ok bool
	switch k := v.key.(type) {
	case *rsa.PublicKey:
		// cursive signs with the maximum salt length; Auto accepts it (and any other).
		ok = rsa.VerifyPSS(k, v.algo, digest, v.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: v.algo}) == nil
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, v.sig)
	}
	if !ok {
		return signatureRefused("the signature of image %s does not match its data and certificate", v.imageID)
	}
	return nil
}
