package auth_test

import (
	"encoding/base64"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

// TestRandomSecretNoLeadingDash: tokens and generated passwords go on command lines, where
// a leading '-' reads as an option (one in 64 plain base64 strings starts with one).
func TestRandomSecretNoLeadingDash(t *testing.T) {
	seen := map[string]bool{}
	for range 20000 {
		s := auth.RandomSecret(18)
		if s[0] == '-' {
			t.Fatalf("secret %q starts with '-'", s)
		}
		if b, err := base64.RawURLEncoding.DecodeString(s); err != nil || len(b) != 18 {
			t.Fatalf("secret %q: %d bytes, %v", s, len(b), err)
		}
		if seen[s] {
			t.Fatalf("secret %q twice", s)
		}
		seen[s] = true
	}
}
