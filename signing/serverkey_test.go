package signing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"sync"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/signing"
)

// TestPAE checks the pre-authentication encoding against the DSSE specification's example.
func TestPAE(t *testing.T) {
	got := string(signing.PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

// TestServerKey runs on both metadata backends: nodes starting at once agree on one key, a
// later start loads it, its id is the hash of its public key, and its envelopes verify with
// the served PEM key and fail once tampered with.
func TestServerKey(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			url := ""
			if backend == "redis" {
				url = testenv.StartRedis(t)
			}
			m := testenv.OpenStore(t, url).Meta()
			ctx := context.Background()
			keys := make([]*signing.ServerKey, 8)
			var wg sync.WaitGroup
			for i := range keys {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := signing.LoadServerKey(ctx, m)
					if err != nil {
						t.Error(err)
						return
					}
					keys[i] = k
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			later, err := signing.LoadServerKey(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.ID() != later.ID() || string(k.PublicKeyPEM()) != string(later.PublicKeyPEM()) {
					t.Fatalf("nodes disagree: %s and %s", k.ID(), later.ID())
				}
			}
			block, _ := pem.Decode(later.PublicKeyPEM())
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			ec := pub.(*ecdsa.PublicKey)
			if id, _ := signing.KeyID(ec); id != later.ID() || ec.Curve.Params().Name != "P-256" {
				t.Fatalf("key id %s, want %s; curve %s", later.ID(), id, ec.Curve.Params().Name)
			}
			env, err := later.SignDSSE("application/vnd.in-toto+json", []byte(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			typ, payload, err := signing.VerifyDSSE(ec, env)
			if err != nil || typ != "application/vnd.in-toto+json" || string(payload) != `{"a":1}` {
				t.Fatalf("verify: %q %q %v", typ, payload, err)
			}
			var e signing.Envelope
			json.Unmarshal(env, &e)
			if len(e.Signatures) != 1 || e.Signatures[0].KeyID != later.ID() {
				t.Fatalf("envelope signatures: %+v", e.Signatures)
			}
			for name, tamper := range map[string]func(*signing.Envelope){
				"payload": func(e *signing.Envelope) { e.Payload = "eyJhIjoyfQ==" },
				"type":    func(e *signing.Envelope) { e.PayloadType = "text/plain" },
				"sig":     func(e *signing.Envelope) { e.Signatures[0].Sig = "AAAA" },
			} {
				var bad signing.Envelope
				json.Unmarshal(env, &bad)
				tamper(&bad)
				b, _ := json.Marshal(bad)
				if _, _, err := signing.VerifyDSSE(ec, b); err == nil {
					t.Errorf("tampered %s verifies", name)
				}
			}
		})
	}
}
