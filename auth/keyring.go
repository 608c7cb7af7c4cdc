package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// keyRing is a list of HMAC keys in the metadata store, shared by every node: the newest
// signs, a new one is made once it is older than Rotate, and an old one keeps verifying until
// everything it signed has expired (Rotate + MaxTTL after it was made). One transaction
// makes a new key, so nodes that rotate at once agree on it. Secrets never change, so each
// node caches them; a key it does not know yet is read from the store on first sight.
type keyRing struct {
	Meta meta.Store
	Key  string // the metadata key holding the JSON list, oldest first
	// Rotate and MaxTTL as URLSigner's; the caller supplies defaults.
	Rotate, MaxTTL time.Duration

	mu     sync.Mutex
	known  map[string][]byte
	newest ringKey // cached signing key, reused while younger than Rotate
}

type ringKey struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

func (k *keyRing) load(tx meta.Tx) ([]ringKey, error) {
	b, err := tx.Get(k.Key)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []ringKey
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.Key, err)
	}
	return keys, nil
}

func (k *keyRing) remember(keys []ringKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known == nil {
		k.known = map[string][]byte{}
	}
	for _, x := range keys {
		k.known[x.ID] = x.Secret
	}
	if n := len(keys); n > 0 && keys[n-1].Created.After(k.newest.Created) {
		k.newest = keys[n-1]
	}
}

// secret returns the secret of key id, nil when there is no such key.
func (k *keyRing) secret(ctx context.Context, id string) ([]byte, error) {
	k.mu.Lock()
	sec, ok := k.known[id]
	k.mu.Unlock()
	if ok {
		return sec, nil
	}
	var keys []ringKey
	if err := k.Meta.View(ctx, func(tx meta.Tx) (err error) {
		keys, err = k.load(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("load keys %s: %w", k.Key, err)
	}
	k.remember(keys)
	for _, x := range keys {
		if x.ID == id {
			return x.Secret, nil
		}
	}
	return nil, nil
}

// signingKey returns the newest key, making one when it is older than Rotate (and dropping
// the keys whose signatures have all expired).
func (k *keyRing) signingKey(ctx context.Context, now time.Time) (ringKey, error) {
	k.mu.Lock()
	cached := k.newest
	k.mu.Unlock()
	if cached.ID != "" && now.Sub(cached.Created) < k.Rotate && !now.Before(cached.Created) {
		return cached, nil
	}
	var out ringKey
	var keys []ringKey
	err := k.Meta.Update(ctx, func(tx meta.Tx) error {
		var err error
		if keys, err = k.load(tx); err != nil {
			return err
		}
		if n := len(keys); n > 0 && now.Sub(keys[n-1].Created) < k.Rotate {
			out = keys[n-1]
			return nil
		}
		kept := keys[:0:0]
		for _, x := range keys {
			if now.Sub(x.Created) < k.Rotate+k.MaxTTL {
				kept = append(kept, x)
			}
		}
		id := make([]byte, 6)
		out = ringKey{Secret: make([]byte, 32), Created: now}
		rand.Read(id)
		rand.Read(out.Secret)
		out.ID = base64.RawURLEncoding.EncodeToString(id)
		keys = append(kept, out)
		b, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		return tx.Put(k.Key, b)
	})
	if err != nil {
		return ringKey{}, fmt.Errorf("signing key %s: %w", k.Key, err)
	}
	k.remember(keys)
	return out, nil
}
