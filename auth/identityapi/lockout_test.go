package identityapi

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// TestPasswordLockout: after lockout_failure_attempts failures, POST /v3/auth/tokens
// refuses the user with Keystone's 401, byte for byte the answer to a wrong password, the
// right password included; an unknown user locks out the same way; after lockout_duration
// the user signs in again.
func TestPasswordLockout(t *testing.T) {
	var offset atomic.Int64
	th := &auth.Throttle{UserAttempts: 2, AddrAttempts: 100, Duration: 10 * time.Minute,
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
	ta := newTestAPI(t, Options{Throttle: th})

	signIn := func(user, pw string) (int, string) {
		resp, body := ta.do("POST", "/identity/v3/auth/tokens", "", passwordAuth(user, pw, ""))
		return resp.StatusCode, string(body)
	}
	var wrong string
	for range 2 {
		var status int
		if status, wrong = signIn("admin", "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d %s", status, wrong)
		}
	}
	if status, body := signIn("admin", adminPassword); status != http.StatusUnauthorized || body != wrong {
		t.Fatalf("locked out, right password: %d %s; want the wrong password's 401 %s", status, body, wrong)
	}
	for range 2 {
		signIn("ghost", "x")
	}
	if status, body := signIn("ghost", "x"); status != http.StatusUnauthorized || body != wrong {
		t.Fatalf("locked out unknown user: %d %s", status, body)
	}
	ta.advance(11 * time.Minute)
	offset.Add(int64(11 * time.Minute))
	if status, body := signIn("admin", adminPassword); status != http.StatusCreated {
		t.Fatalf("after the lockout: %d %s", status, body)
	}
}
