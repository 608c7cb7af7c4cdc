package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestURLSignerRotation runs the rotation checks on both metadata backends.
func TestURLSignerRotation(t *testing.T) {
	bolt, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	rds, err := meta.OpenRedis(context.Background(), testenv.StartRedis(t), "t:")
	if err != nil {
		t.Fatal(err)
	}
	defer rds.Close()
	for name, m := range map[string]meta.Store{"bolt": bolt, "redis": rds} {
		t.Run(name, func(t *testing.T) { testURLSignerRotation(t, m) })
	}
}

// testURLSignerRotation: a URL verifies until it expires; a new key signs once the newest is
// older than Rotate while the old one still verifies its URLs; a key is dropped once every URL
// it signed has expired; two signers over one store (two nodes) verify each other's URLs;
// tampered, truncated and foreign tokens are invalid; a life outside (0, MaxTTL] is refused.
func testURLSignerRotation(t *testing.T, m meta.Store) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := &URLSigner{Meta: m, Rotate: time.Hour, MaxTTL: 2 * time.Hour, Now: clock}
	b := &URLSigner{Meta: m, Rotate: time.Hour, MaxTTL: 2 * time.Hour, Now: clock}
	claims := URLClaims{Repo: "p/r", Digest: "sha256:" + strings.Repeat("ab", 32), User: "u", Project: "p"}

	first, c1, err := a.Sign(ctx, claims, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Verify(ctx, first); err != nil || got.Repo != "p/r" || got.Nonce != c1.Nonce {
		t.Fatalf("other node: %+v %v", got, err)
	}
	now = now.Add(90 * time.Minute) // past Rotate: a new key signs
	second, c2, err := b.Sign(ctx, claims, time.Hour)
	if err != nil || c2.KeyID == c1.KeyID {
		t.Fatalf("rotation: %v, key %s after %s", err, c2.KeyID, c1.KeyID)
	}
	for _, tok := range []string{first, second} {
		if _, err := a.Verify(ctx, tok); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
	now = now.Add(31 * time.Minute) // first expired
	if _, err := a.Verify(ctx, first); !errors.Is(err, ErrURLExpired) {
		t.Errorf("expired: %v", err)
	}
	// Past Rotate+MaxTTL of the first key: the next signature drops it.
	now = now.Add(2 * time.Hour)
	if _, _, err := a.Sign(ctx, claims, time.Minute); err != nil {
		t.Fatal(err)
	}
	fresh := &URLSigner{Meta: m, Now: clock}
	if _, err := fresh.Verify(ctx, first); !errors.Is(err, ErrURLInvalid) {
		t.Errorf("dropped key: %v", err)
	}

	now = now.Add(-2 * time.Hour)
	tok, _, _ := a.Sign(ctx, claims, time.Hour)
	if _, err := a.Verify(ctx, tok); err != nil { // remembered as verified: its variants are not
		t.Fatal(err)
	}
	p, sig, _ := strings.Cut(tok, ".")
	for _, bad := range []string{p, p + ".", "." + sig, p + "x." + sig, p + "." + sig[1:], "x" + tok, ""} {
		if _, err := a.Verify(ctx, bad); !errors.Is(err, ErrURLInvalid) {
			t.Errorf("Verify(%q) = %v, want invalid", bad, err)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Second, 2*time.Hour + time.Second} {
		if _, _, err := a.Sign(ctx, claims, ttl); err == nil {
			t.Errorf("ttl %s accepted", ttl)
		}
	}
}
