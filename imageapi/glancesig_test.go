package imageapi_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// selfSigned makes a certificate for key valid from notBefore to notAfter.
func selfSigned(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "image signer"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// signPSS signs data as openstack image create --sign-key-path does: SHA-256, RSA-PSS with
// the largest salt.
func signPSS(t *testing.T, key *rsa.PrivateKey, data []byte) string {
	t.Helper()
	d := sha256.Sum256(data)
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func blobCount(t *testing.T, e *env) int64 {
	t.Helper()
	var n int64
	if err := e.store.Meta().View(ctx, func(tx meta.Tx) (err error) { n, err = tx.SetLen("blobs"); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGlanceSignatureVerification checks the img_signature* properties at upload (PUT /file)
// and at import (stage + glance-direct) against certificates kept in the key manager: good
// signatures activate the image; every hostile or wrong input is a 400 in Glance's format,
// leaves the image queued and commits no blob.
func TestGlanceSignatureVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secrets := auth.NewSecrets(e.store.Meta())
	e.cat.Certificates = auth.Certificates{Secrets: secrets, Policy: &auth.Policy{Directory: e.ident}}
	now := e.cat.Now()
	store := func(project, creator string, der []byte) string {
		s, err := secrets.Create(ctx, auth.Secret{ProjectID: e.project[project], CreatorID: creator, SecretType: "certificate",
			ContentType: "application/octet-stream", Payload: der})
		if err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := func(k crypto.Signer) []byte { return selfSigned(t, k, now.Add(-time.Hour), now.Add(24*time.Hour)) }
	rsaCert := store("a", "member-a", valid(rsaKey))
	pemCert := store("a", "member-a", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: valid(rsaKey)}))
	ecCert := store("a", "member-a", valid(ecKey))
	ec256Cert := store("a", "member-a", valid(ec256))
	expired := store("a", "member-a", selfSigned(t, rsaKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	future := store("a", "member-a", selfSigned(t, rsaKey, now.Add(24*time.Hour), now.Add(48*time.Hour)))
	notCert := store("a", "member-a", []byte("not a certificate"))
	bCert := store("b", "member-b", valid(rsaKey))

	disk := rawImage(1 << 20)
	good := signPSS(t, rsaKey, disk)
	d384 := sha512.Sum384(disk)
	ecSig, _ := ecdsa.SignASN1(rand.Reader, ecKey, d384[:])
	props := func(sig, hash, keyType, cert string) map[string]any {
		return map[string]any{"name": "signed", "disk_format": "raw", "container_format": "bare",
			"img_signature": sig, "img_signature_hash_method": hash, "img_signature_key_type": keyType,
			"img_signature_certificate_uuid": cert}
	}

	// Good signatures: RSA-PSS over SHA-256 (DER and PEM certificates, and the b'…' form
	// OSC 6 writes), ECC P-384 over SHA-384.
	for name, p := range map[string]map[string]any{
		"rsa-pss":       props(good, "SHA-256", "RSA-PSS", rsaCert),
		"pem cert":      props(good, "SHA-256", "RSA-PSS", pemCert),
		"python bytes":  props("b'"+good+"'", "SHA-256", "RSA-PSS", rsaCert),
		"ecc secp384r1": props(base64.StdEncoding.EncodeToString(ecSig), "SHA-384", "ECC_SECP384R1", ecCert),
	} {
		id := e.create("member-a", p)
		e.upload("member-a", id, disk)
		if img := e.show(id); img["status"] != "active" {
			t.Errorf("%s: status %v, want active", name, img["status"])
		}
	}

	before := blobCount(t, e)
	otherSig := signPSS(t, otherKey, disk)
	tampered := append([]byte{disk[0] ^ 1}, disk[1:]...)
	for _, c := range []struct {
		name  string
		props map[string]any
		data  []byte
		msg   string
	}{
		{"another key", props(otherSig, "SHA-256", "RSA-PSS", rsaCert), disk, "does not match"},
		{"tampered data", props(good, "SHA-256", "RSA-PSS", rsaCert), tampered, "does not match"},
		{"other hash", props(good, "SHA-512", "RSA-PSS", rsaCert), disk, "does not match"},
		{"bad base64", props("%%%not base64", "SHA-256", "RSA-PSS", rsaCert), disk, "base64"},
		{"empty signature", props("", "SHA-256", "RSA-PSS", rsaCert), disk, "base64"},
		{"unknown hash", props(good, "MD5", "RSA-PSS", rsaCert), disk, "Invalid signature hash method: MD5"},
		{"unknown key type", props(good, "SHA-256", "RSA-PKCS1", rsaCert), disk, "Invalid signature key type: RSA-PKCS1"},
		{"P-256 not allowed", props(good, "SHA-256", "ECC_SECP256R1", ec256Cert), disk, "Invalid signature key type"},
		{"key type mismatch", props(good, "SHA-256", "ECC_SECP384R1", rsaCert), disk, "Invalid public key type"},
		{"unknown cert", props(good, "SHA-256", "RSA-PSS", "5f1c3a55-0000-4000-8000-000000000000"), disk, "Certificate not found"},
		{"cert id not a uuid", props(good, "SHA-256", "RSA-PSS", "../../etc"), disk, "Certificate not found"},
		{"cert of another project", props(good, "SHA-256", "RSA-PSS", bCert), disk, "Certificate not found"},
		{"expired cert", props(good, "SHA-256", "RSA-PSS", expired), disk, "not valid after"},
		{"cert not yet valid", props(good, "SHA-256", "RSA-PSS", future), disk, "not valid before"},
		{"secret is no cert", props(good, "SHA-256", "RSA-PSS", notCert), disk, "Unable to retrieve certificate"},
	} {
		id := e.create("member-a", c.props)
		r := e.do("member-a", "PUT", "/v2/images/"+id+"/file", c.data, "Content-Type", "application/octet-stream")
		body := string(r.body)
		if r.status != 400 || !strings.Contains(body, "Signature verification failed") || !strings.Contains(body, c.msg) ||
			!strings.Contains(body, "400 Bad Request") {
			t.Errorf("%s: %d %s, want 400 mentioning %q", c.name, r.status, body, c.msg)
		}
		if img := e.show(id); img["status"] != "queued" || img["size"] != nil || img["checksum"] != nil {
			t.Errorf("%s: after refusal %v size %v, want queued without data", c.name, img["status"], img["size"])
		}
	}
	if after := blobCount(t, e); after != before {
		t.Errorf("refused uploads committed %d blobs", after-before)
	}

	// Any of the four missing: no verification (Glance's should_create_verifier).
	partial := props("garbage", "SHA-256", "RSA-PSS", rsaCert)
	delete(partial, "img_signature_certificate_uuid")
	id := e.create("member-a", partial)
	e.upload("member-a", id, disk)

	// Import: the staged data is verified when imported; a bad signature sends the image
	// back to queued.
	for _, c := range []struct {
		sig, want string
	}{{otherSig, "queued"}, {good, "active"}} {
		id := e.create("member-a", props(c.sig, "SHA-256", "RSA-PSS", rsaCert))
		if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", disk, "Content-Type", "application/octet-stream"); r.status != 204 {
			t.Fatalf("stage: %d %s", r.status, r.body)
		}
		if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", map[string]any{"method": map[string]string{"name": "glance-direct"}}); r.status != 202 {
			t.Fatalf("import: %d %s", r.status, r.body)
		}
		if img := e.waitStatus(id, "active", "queued"); img["status"] != c.want {
			t.Errorf("import signed by %s: %v, want %s", map[bool]string{true: "the certificate's key", false: "another key"}[c.sig == good], img["status"], c.want)
		}
	}
}
