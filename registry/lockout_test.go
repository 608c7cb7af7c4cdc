package registry

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/testenv"
)

// TestPasswordLockout: after the failures allowed, the token endpoint (GET with Basic, and
// the OAuth2 password grant) and Basic auth on the API refuse the user as UNAUTHORIZED, the
// right password included, until the lockout passes.
func TestPasswordLockout(t *testing.T) {
	ctx := context.Background()
	store := testenv.OpenStore(t, "")
	id := auth.NewIdentity(store.Meta())
	if _, err := id.Bootstrap(ctx, "right"); err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(ctx, store.Meta(), "xloud-image")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	th := &auth.Throttle{Store: store.Meta(), UserAttempts: 2, AddrAttempts: 100, Duration: 10 * time.Minute,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	reg := New(store, Options{Access: &Access{
		Authenticator: &auth.Authenticator{Passwords: id, Tokens: id, Signer: signer, Throttle: th},
		Policy:        &auth.Policy{Directory: id},
		Service:       "xloud-image",
	}})
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/token", reg.TokenHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tr := &testRegistry{t: t, srv: srv, store: store}

	basic := func(pw string) []string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth("admin", pw)
		return []string{"Authorization", req.Header.Get("Authorization")}
	}
	var wrongBody []byte
	for range 2 {
		resp, body := tr.do("GET", "/token?scope=repository:a/b:pull", nil, basic("wrong")...)
		tr.expect(resp, body, http.StatusUnauthorized, CodeUnauthorized)
		wrongBody = body
	}
	var logs syncBuf
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	resp, body := tr.do("GET", "/token?scope=repository:a/b:pull", nil, basic("right")...)
	tr.expect(resp, body, http.StatusUnauthorized, CodeUnauthorized)
	if !strings.Contains(logs.String(), "locked out") {
		t.Errorf("the lockout is not named in the log: %s", logs.String())
	}
	if string(body) != string(wrongBody) {
		t.Fatalf("locked out answer %s differs from a wrong password's %s", body, wrongBody)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"right"}}.Encode()
	resp, body = tr.do("POST", "/token", []byte(form), "Content-Type", "application/x-www-form-urlencoded")
	tr.expect(resp, body, http.StatusUnauthorized, CodeUnauthorized)
	resp, body = tr.do("GET", "/v2/", nil, basic("right")...)
	tr.expect(resp, body, http.StatusUnauthorized, CodeUnauthorized)

	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	resp, body = tr.do("GET", "/token?scope=repository:a/b:pull", nil, basic("right")...)
	tr.expect(resp, body, http.StatusOK, "")
	if !strings.Contains(string(body), `"token"`) {
		t.Fatalf("token answer %s", body)
	}
}
