package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestRegistryTokenKeyRotation: two signers over one store (two nodes) verify each other's
// tokens; after a rotation the new key signs and the old one still verifies its unexpired
// tokens; a key past its tokens' life is dropped; a token naming no key, or a key never
// made, is refused. On both metadata backends.
func TestRegistryTokenKeyRotation(t *testing.T) {
	bolt, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	rds, err := meta.OpenRedis(context.Background(), testenv.StartRedis(t), "rt:")
	if err != nil {
		t.Fatal(err)
	}
	defer rds.Close()
	for name, m := range map[string]meta.Store{"bolt": bolt, "redis": rds} {
		t.Run(name, func(t *testing.T) { testTokenRotation(t, m) })
	}
}

func testTokenRotation(t *testing.T, m meta.Store) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := auth.NewSigner(ctx, m, "svc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := auth.NewSigner(ctx, m, "svc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.Now, b.Now = clock, clock
	pr := auth.Principal{UserID: "u1", UserName: "alice"}
	kid := func(tok string) string {
		h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		_, after, _ := strings.Cut(string(h), `"kid":"`)
		id, _, _ := strings.Cut(after, `"`)
		return id
	}
	t1, _, err := a.Sign(ctx, pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := b.Verify(ctx, t1); err != nil || c.Subject != "u1" {
		t.Fatalf("node b verifying node a's token: %v", err)
	}
	now = now.Add(61 * time.Minute) // past the rotation, within nothing's life but the key's
	t2, _, err := b.Sign(ctx, pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kid(t1) == kid(t2) || kid(t2) == "" {
		t.Fatalf("no new key after the rotation period: %q, %q", kid(t1), kid(t2))
	}
	t3, _, _ := a.Sign(ctx, pr, nil)
	if kid(t3) != kid(t2) {
		t.Fatalf("the nodes sign with different keys after a rotation: %q, %q", kid(t3), kid(t2))
	}
	if _, err := a.Verify(ctx, t2); err != nil {
		t.Fatalf("node a verifying a token of the new key: %v", err)
	}
	if _, err := a.Verify(ctx, t1); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("an hour-old token: %v, want expired (its key still known)", err)
	}
	// Two rotations later the first key is gone: a fresh signer (a node started now) does not
	// know it.
	now = now.Add(2 * time.Hour)
	if _, _, err := b.Sign(ctx, pr, nil); err != nil {
		t.Fatal(err)
	}
	c, _ := auth.NewSigner(ctx, m, "svc", time.Hour)
	c.Now = clock
	if _, err := c.Verify(ctx, t1); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("a token of a dropped key: %v, want unauthorized", err)
	}
	parts := strings.Split(t2, ".")
	for name, tok := range map[string]string{
		"no kid":    base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		"alg none":  base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+kid(t2)+`"}`)) + "." + parts[1] + ".",
		"odd kid":   base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"nope"}`)) + "." + parts[1] + "." + parts[2],
		"truncated": parts[0] + "." + parts[1],
	} {
		if _, err := c.Verify(ctx, tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
