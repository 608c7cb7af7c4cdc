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

// throttleBackends runs fn over a Throttle on each metadata backend.
func throttleBackends(t *testing.T, fn func(t *testing.T, th *Throttle, clock *fakeClock)) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var m meta.Store
			var err error
			if backend == "bolt" {
				m, err = meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
			} else {
				m, err = meta.OpenRedis(context.Background(), redisURL, "t"+filepath.Base(t.TempDir())+":")
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			th := &Throttle{Store: m, UserAttempts: 3, AddrAttempts: 5, Duration: 10 * time.Minute, Now: clock.Now}
			fn(t, th, clock)
		})
	}
}

// signIn is one password sign-in through the throttle, where admin's password is "right"
// (the doors' tests check real passwords; bcrypt would only slow these down).
func signIn(th *Throttle, user, pass, addr string) error {
	_, err := th.Guard(context.Background(), user, addr, func() (User, error) {
		if strings.EqualFold(user, "admin") && pass == "right" {
			return User{Name: "admin"}, nil
		}
		return User{}, ErrUnauthorized
	})
	return err
}

// TestThrottleLocksUser: after UserAttempts failures the name is locked out, the right
// password included, with the same error as a wrong password; after Duration it may try
// again; a success resets its count. Unknown names lock out alike.
func TestThrottleLocksUser(t *testing.T) {
	throttleBackends(t, func(t *testing.T, th *Throttle, clock *fakeClock) {
		for i := range 3 {
			if err := signIn(th, "admin", "wrong", "10.0.0.1:1000"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("failure %d: %v", i, err)
			}
		}
		// Another address, the right password: still refused, as a wrong password is.
		err := signIn(th, "admin", "right", "10.0.0.2:1000")
		if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrLockedOut) {
			t.Fatalf("locked user, right password: %v, want ErrLockedOut (an ErrUnauthorized)", err)
		}
		clock.Advance(9 * time.Minute)
		if err := signIn(th, "ADMIN", "right", "10.0.0.2:1000"); !errors.Is(err, ErrLockedOut) {
			t.Fatalf("locked user by another case: %v, want ErrLockedOut", err)
		}
		clock.Advance(2 * time.Minute)
		if err := signIn(th, "admin", "right", "10.0.0.2:1000"); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
		// The success reset the count: two more failures do not lock.
		for range 2 {
			signIn(th, "admin", "wrong", "10.0.0.3:1000")
		}
		if err := signIn(th, "admin", "right", "10.0.0.3:1000"); err != nil {
			t.Fatalf("after a reset and two failures: %v", err)
		}

		for range 3 {
			signIn(th, "nobody", "x", "10.0.0.4:1000")
		}
		if err := signIn(th, "nobody", "x", "10.0.0.5:1000"); !errors.Is(err, ErrLockedOut) {
			t.Fatalf("unknown name after 3 failures: %v, want ErrLockedOut", err)
		}
	})
}

// TestThrottleLocksAddress: failures over many names from one address lock the address
// out, for every name; other addresses are unaffected; Sweep drops stale records.
func TestThrottleLocksAddress(t *testing.T) {
	throttleBackends(t, func(t *testing.T, th *Throttle, clock *fakeClock) {
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			signIn(th, name, "guess", "192.0.2.7:4000")
		}
		if err := signIn(th, "admin", "right", "192.0.2.7:4001"); !errors.Is(err, ErrLockedOut) {
			t.Fatalf("locked address: %v, want ErrLockedOut", err)
		}
		if err := signIn(th, "admin", "right", "192.0.2.8:4000"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		if n, err := th.Sweep(context.Background()); err != nil || n != 0 {
			t.Fatalf("sweep of current records removed %d, %v", n, err)
		}
		clock.Advance(11 * time.Minute)
		if n, err := th.Sweep(context.Background()); err != nil || n != 6 {
			t.Fatalf("sweep of stale records removed %d, %v; want 6 (5 names, 1 address)", n, err)
		}
		if err := signIn(th, "admin", "right", "192.0.2.7:4001"); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
	})
}

// TestThrottleSharedAcrossNodes: two servers over one Redis share the counts.
func TestThrottleSharedAcrossNodes(t *testing.T) {
	url := testenv.StartRedis(t)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var nodes []*Throttle
	for range 2 {
		m, err := meta.OpenRedis(context.Background(), url, "shared:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		nodes = append(nodes, &Throttle{Store: m, UserAttempts: 2, Duration: time.Minute, Now: clock.Now})
	}
	signIn(nodes[0], "admin", "wrong", "a:1")
	signIn(nodes[1], "admin", "wrong", "b:1")
	if err := signIn(nodes[0], "admin", "right", "c:1"); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("failures on two nodes: %v, want ErrLockedOut", err)
	}
}
