// Package signing holds the server's own signing: the server key (ECDSA P-256, kept in the
// metadata store so every node signs with the same key) and DSSE envelopes over in-toto
// statements, the format cosign reads for attestations.
package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// Metadata keys of the server key. Keys are never overwritten: a rotation adds a key and
// moves current, and envelopes name the key that signed them, so old attestations stay
// verifiable with the key they name.
//
//	signing:serverkey:current     the id of the key that signs now
//	signing:serverkey:<id>        serverKeyRecord
const (
	keyCurrent   = "signing:serverkey:current"
	keyPrefixKey = "signing:serverkey:"
)

// serverKeyRecord is a stored key: its private half as PKCS#8 DER.
type serverKeyRecord struct {
	ID      string    `json:"id"`
	PKCS8   []byte    `json:"pkcs8"`
	Created time.Time `json:"created"`
}

// ServerKey is the key the server signs its attestations with.
type ServerKey struct {
	id   string
	priv *ecdsa.PrivateKey
}

// KeyID is a key's id: sha256:<hex> of its DER SubjectPublicKeyInfo, so anyone holding the
// public key can compute it.
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal server public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// LoadServerKey returns the current server key, generating and storing one on first start.
// Nodes starting together agree: the store's transaction lets one key become current and the
// others read it.
func LoadServerKey(ctx context.Context, m meta.Store) (*ServerKey, error) {
	fresh, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	freshID, err := KeyID(&fresh.PublicKey)
	if err != nil {
		return nil, err
	}
	freshDER, err := x509.MarshalPKCS8PrivateKey(fresh)
	if err != nil {
		return nil, fmt.Errorf("marshal server key: %w", err)
	}
	var rec serverKeyRecord
	err = m.Update(ctx, func(tx meta.Tx) error {
		rec = serverKeyRecord{}
		id, err := tx.Get(keyCurrent)
		if err == nil {
			b, err := tx.Get(keyPrefixKey + string(id))
			if err != nil {
				return fmt.Errorf("server key %s: %w", id, err)
			}
			return json.Unmarshal(b, &rec)
		}
		if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		rec = serverKeyRecord{ID: freshID, PKCS8: freshDER, Created: time.Now().UTC()}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := tx.Put(keyPrefixKey+freshID, b); err != nil {
			return err
		}
		return tx.Put(keyCurrent, []byte(freshID))
	})
	if err != nil {
		return nil, fmt.Errorf("load server key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(rec.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("server key %s: %w", rec.ID, err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("server key %s is a %T, not ECDSA", rec.ID, k)
	}
	return &ServerKey{id: rec.ID, priv: priv}, nil
}

// ID is the key's id (KeyID of its public key).
func (k *ServerKey) ID() string { return k.id }

// Public is the public key.
func (k *ServerKey) Public() *ecdsa.PublicKey { return &k.priv.PublicKey }

// PublicKeyPEM is the public key as a PEM "PUBLIC KEY" block, the form `cosign
// verify-attestation --key` reads.
func (k *ServerKey) PublicKeyPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&k.priv.PublicKey) // a P-256 key always marshals
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse, envelope.md).
type Envelope struct {
	PayloadType string              `json:"payloadType"`
	Payload     string              `json:"payload"`
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one signature of an Envelope.
type EnvelopeSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// PAE is DSSE's pre-authentication encoding of a payload: what is signed.
func PAE(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// SignDSSE signs payload as a DSSE envelope of payloadType: ECDSA P-256 over SHA-256 of the
// PAE, ASN.1 signature, as sigstore's verifiers expect. The signature names the key.
func (k *ServerKey) SignDSSE(payloadType string, payload []byte) ([]byte, error) {
	sum := sha256.Sum256(PAE(payloadType, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		return nil, fmt.Errorf("sign attestation: %w", err)
	}
	return json.Marshal(Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []EnvelopeSignature{{KeyID: k.id, Sig: base64.StdEncoding.EncodeToString(sig)}}})
}

// VerifyDSSE checks envelope against pub and returns its payload type and payload.
func VerifyDSSE(pub *ecdsa.PublicKey, envelope []byte) (string, []byte, error) {
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return "", nil, fmt.Errorf("DSSE envelope: %w", err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return "", nil, fmt.Errorf("DSSE payload: %w", err)
	}
	sum := sha256.Sum256(PAE(env.PayloadType, payload))
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && ecdsa.VerifyASN1(pub, sum[:], sig) {
			return env.PayloadType, payload, nil
		}
	}
	return "", nil, errors.New("DSSE envelope: no signature verifies with the key")
}
