package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// ErrLockedOut refuses a sign-in while its user name or address is locked out. It is an
// ErrUnauthorized, so callers answer it exactly as a wrong password: nothing tells a guesser
// whether the user exists or the lockout is on.
var ErrLockedOut = fmt.Errorf("%w: too many failed sign-ins, locked out for now", ErrUnauthorized)

// Throttle locks out password sign-ins after repeated failures, per user name and per client
// address, as Keystone's lockout_failure_attempts and lockout_duration do: after UserAttempts
// failures of one name (AddrAttempts from one address), every attempt is refused, the right
// password included, until Duration has passed since the last failure. A success resets the
// name's count. The counts live in the metadata store, so every server node shares them.
type Throttle struct {
	Store meta.Store
	// UserAttempts and AddrAttempts are the failures before a lockout (0: no lockout of that
	// kind).
	UserAttempts int
	AddrAttempts int
	// Duration is how long a lockout lasts, and how long a failure counts.
	Duration time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// failures is the record of one name's or address's recent failed sign-ins.
type failures struct {
	Count int   `json:"count"`
	Last  int64 `json:"last"` // Unix nanoseconds of the latest failure
}

// setLockouts lists the records, so Sweep finds stale ones.
const setLockouts = "lockouts"

func keyUserFailures(name string) string { return "lockout:user:" + strings.ToLower(name) }
func keyAddrFailures(addr string) string { return "lockout:addr:" + clientHost(addr) }

// clientHost is the host of a RemoteAddr ("ip:port"), or addr itself.
func clientHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Guard runs check, a password check of user from addr, unless a lockout is on (then
// ErrLockedOut, check not run), and counts its outcome. A nil Throttle only runs check.
func (t *Throttle) Guard(ctx context.Context, user, addr string, check func() (User, error)) (User, error) {
	if t == nil {
		return check()
	}
	locked, counted, err := t.locked(ctx, user, addr)
	if err != nil {
		return User{}, err
	}
	if locked {
		return User{}, ErrLockedOut
	}
	u, err := check()
	switch {
	case err == nil && counted: // most sign-ins have nothing to reset: no write
		if rerr := t.reset(ctx, user); rerr != nil {
			return User{}, rerr
		}
	case errors.Is(err, ErrUnauthorized):
		if ferr := t.fail(ctx, user, addr); ferr != nil {
			return User{}, ferr
		}
	}
	return u, err
}

// locked reports whether the name or the address is locked out now, and whether the name
// has failures on record.
func (t *Throttle) locked(ctx context.Context, user, addr string) (locked, counted bool, err error) {
	now := t.Now().UnixNano()
	err = t.Store.View(ctx, func(tx meta.Tx) error {
		locked, counted = false, false
		for _, c := range t.counters(user, addr) {
			f, err := getFailures(tx, c.key)
			if err != nil {
				return err
			}
			if f.Count >= c.max && t.current(f, now) {
				locked = true
			}
			if c.key == keyUserFailures(user) && f.Count > 0 {
				counted = true
			}
		}
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("check sign-in lockout: %w", err)
	}
	return locked, counted, nil
}

type counter struct {
	key string
	max int
}

// counters are the records a sign-in of user from addr counts against.
func (t *Throttle) counters(user, addr string) []counter {
	var cs []counter
	if t.UserAttempts > 0 {
		cs = append(cs, counter{keyUserFailures(user), t.UserAttempts})
	}
	if t.AddrAttempts > 0 && addr != "" {
		cs = append(cs, counter{keyAddrFailures(addr), t.AddrAttempts})
	}
	return cs
}

// current reports whether f's failures still count at now.
func (t *Throttle) current(f failures, now int64) bool {
	return now < f.Last+t.Duration.Nanoseconds()
}

// fail counts a failed sign-in; failures older than Duration are forgotten first.
func (t *Throttle) fail(ctx context.Context, user, addr string) error {
	now := t.Now().UnixNano()
	err := t.Store.Update(ctx, func(tx meta.Tx) error {
		for _, c := range t.counters(user, addr) {
			f, err := getFailures(tx, c.key)
			if err != nil {
				return err
			}
			if !t.current(f, now) {
				f = failures{}
			}
			f.Count++
			f.Last = now
			if err := putFailures(tx, c.key, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count failed sign-in: %w", err)
	}
	return nil
}

// reset forgets a user's failures after a successful sign-in.
func (t *Throttle) reset(ctx context.Context, user string) error {
	key := keyUserFailures(user)
	err := t.Store.Update(ctx, func(tx meta.Tx) error {
		if ok, err := tx.SetHas(setLockouts, key); err != nil || !ok {
			return err
		}
		if err := tx.SetRemove(setLockouts, key); err != nil {
			return err
		}
		return tx.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("reset failed sign-ins: %w", err)
	}
	return nil
}

// Sweep removes records whose failures no longer count, so guessed names do not pile up.
// It returns how many it removed.
func (t *Throttle) Sweep(ctx context.Context) (int, error) {
	var keys []string
	if err := t.Store.View(ctx, func(tx meta.Tx) (err error) {
		keys, err = tx.SetRange(setLockouts, "", 0)
		return err
	}); err != nil {
		return 0, fmt.Errorf("sweep lockouts: %w", err)
	}
	n := 0
	for _, key := range keys {
		removed := false
		err := t.Store.Update(ctx, func(tx meta.Tx) error {
			removed = false
			f, err := getFailures(tx, key)
			if err != nil || t.current(f, t.Now().UnixNano()) {
				return err
			}
			removed = true
			if err := tx.SetRemove(setLockouts, key); err != nil {
				return err
			}
			return tx.Delete(key)
		})
		if err != nil {
			return n, fmt.Errorf("sweep lockouts: %w", err)
		}
		if removed {
			n++
		}
	}
	return n, nil
}

// getFailures reads a record; a missing one is no failures.
func getFailures(tx meta.Tx, key string) (failures, error) {
	var f failures
	b, err := tx.Get(key)
	if errors.Is(err, meta.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("decode %s: %w", key, err)
	}
	return f, nil
}

func putFailures(tx meta.Tx, key string, f failures) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := tx.SetAdd(setLockouts, key); err != nil {
		return err
	}
	return tx.Put(key, b)
}
