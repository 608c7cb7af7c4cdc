package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestSigningPolicyAccess: who may read, change and delete a project's signing policy, with
// the exact statuses; what a bad policy answers (400 with the reason, nothing changed); an
// unknown project (404). On both metadata backends.
func TestSigningPolicyAccess(t *testing.T) {
	t.Parallel()
	tools := signTools{oras: "oras", cosign: "cosign"}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			w := startSignWorld(t, b, tools)
			path := "/v2/xloud/projects/" + w.demoID + "/signing-policy"
			off := map[string]any{"mode": "off", "keys": []any{}, "authorities": []any{}}
			for _, c := range []struct {
				who              string
				get, put, delete int
			}{
				{"admin", 200, 200, 204},
				{"manager", 200, 200, 204},
				{"member", 200, 403, 403},
				{"reader", 200, 403, 403},
				{"outsider", 403, 403, 403},
				{"", 401, 401, 401},
			} {
				for method, want := range map[string]int{"GET": c.get, "PUT": c.put, "DELETE": c.delete} {
					var body any
					if method == "PUT" {
						body = off
					}
					if status, out, _ := w.api(t, method, path, c.who, body); status != want {
						t.Errorf("%s signing-policy as %q: %d %s, want %d", method, c.who, status, out, want)
					}
				}
			}
			if status, out, _ := w.api(t, "GET", "/v2/xloud/projects/00000000000000000000000000000000/signing-policy", "admin", nil); status != 404 {
				t.Errorf("GET signing-policy of an unknown project: %d %s, want 404", status, out)
			}

			// A valid policy, then bad ones: each 400 naming the problem, the policy unchanged.
			testP256Pub, testRSA1024Pub, testCAPEM := testKeys(t)
			good := map[string]any{"mode": "warn", "keys": []any{map[string]string{"name": "ci", "public_key": testP256Pub}}}
			if status, out, _ := w.api(t, "PUT", path, "manager", good); status != 200 {
				t.Fatalf("PUT a valid policy: %d %s", status, out)
			}
			for what, c := range map[string]struct {
				body any
				want string
			}{
				"mode":          {map[string]any{"mode": "strict"}, "mode must be off, warn or enforce"},
				"no json":       {[]byte("{"), "invalid signing policy"},
				"unknown field": {map[string]any{"mode": "off", "require": true}, "unknown field"},
				"bad pem":       {map[string]any{"mode": "off", "keys": []any{map[string]string{"name": "k", "public_key": "nope"}}}, "no PEM public key"},
				"short rsa":     {map[string]any{"mode": "off", "keys": []any{map[string]string{"name": "k", "public_key": testRSA1024Pub}}}, "too short"},
				"no name":       {map[string]any{"mode": "off", "keys": []any{map[string]string{"public_key": testP256Pub}}}, "name"},
				"same name":     {map[string]any{"mode": "off", "keys": []any{map[string]string{"name": "k", "public_key": testP256Pub}, map[string]string{"name": "k", "public_key": testP256Pub}}}, "used twice"},
				"no chain":      {map[string]any{"mode": "off", "authorities": []any{map[string]any{"name": "ca", "certificate_chain": "x", "identities": []any{map[string]string{"issuer": "i", "subject": "s"}}}}}, "certificate_chain"},
				"no identity":   {map[string]any{"mode": "off", "authorities": []any{map[string]any{"name": "ca", "certificate_chain": testCAPEM}}}, "identities"},
				"bad regexp":    {map[string]any{"mode": "off", "authorities": []any{map[string]any{"name": "ca", "certificate_chain": testCAPEM, "identities": []any{map[string]string{"issuer": "i", "subject_regexp": "("}}}}}, "bad regexp"},
				"two issuers":   {map[string]any{"mode": "off", "authorities": []any{map[string]any{"name": "ca", "certificate_chain": testCAPEM, "identities": []any{map[string]string{"issuer": "i", "issuer_regexp": "i", "subject": "s"}}}}}, "exactly one of issuer"},
			} {
				status, out, _ := w.api(t, "PUT", path, "manager", c.body)
				if status != 400 || !strings.Contains(strings.ToLower(string(out)), strings.ToLower(c.want)) {
					t.Errorf("PUT policy with bad %s: %d %s, want 400 naming %q", what, status, out, c.want)
				}
			}
			if status, out, _ := w.api(t, "GET", path, "reader", nil); status != 200 || !strings.Contains(string(out), `"mode":"warn"`) ||
				!strings.Contains(string(out), `"name":"ci"`) {
				t.Errorf("policy after refused changes: %d %s, want the valid one unchanged", status, out)
			}
		})
	}
}

// testKeys makes the public material the bad policies use: a P-256 key, an RSA key too
// short to trust, and a CA certificate.
func testKeys(t *testing.T) (p256, rsa1024, ca string) {
	t.Helper()
	pub := func(k any) string {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}
	return pub(&ek.PublicKey), pub(&rk.PublicKey), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
