package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Cluster-wide chores (the lease janitor, expiring uploads and tokens, the background GC)
// run on one node at a time: before each round a node takes a named lock in the store with an
// expiry. The lock is renewed by its holder's next round; when the holder dies the lock
// lapses after its TTL and another node takes over. Expiry compares the writer's clock with
// the reader's, so nodes' clocks must agree to well within the TTL (NTP does).
//
//	lock:<name>   {"holder": node id, "until": Unix nanoseconds}

func keyLock(name string) string { return "lock:" + name }

type lockRecord struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"`
}

// TryLock takes (or renews) the lock name for holder until now+ttl. It reports false, with no
// error, while another holder's lock has not expired.
func TryLock(ctx context.Context, m Store, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	var got bool
	err := m.Update(ctx, func(tx Tx) error {
		got = false // Update may run this more than once
		var cur lockRecord
		b, err := tx.Get(keyLock(name))
		switch {
		case err == nil:
			if json.Unmarshal(b, &cur) == nil && cur.Holder != holder && cur.Until > now.UnixNano() {
				return nil
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		b, _ = json.Marshal(lockRecord{Holder: holder, Until: now.Add(ttl).UnixNano()})
		got = true
		return tx.Put(keyLock(name), b)
	})
	if err != nil {
		return false, fmt.Errorf("take lock %s: %w", name, err)
	}
	return got, nil
}

// Unlock gives the lock up if holder holds it, so another node need not wait for its expiry.
func Unlock(ctx context.Context, m Store, name, holder string) error {
	return m.Update(ctx, func(tx Tx) error {
		var cur lockRecord
		b, err := tx.Get(keyLock(name))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if json.Unmarshal(b, &cur) == nil && cur.Holder != holder {
			return nil
		}
		return tx.Delete(keyLock(name))
	})
}

// LockHolder is who holds lock name now ("" when nobody does).
func LockHolder(ctx context.Context, m Store, name string, now time.Time) (string, error) {
	var cur lockRecord
	err := m.View(ctx, func(tx Tx) error {
		b, err := tx.Get(keyLock(name))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &cur)
	})
	if errors.Is(err, ErrNotFound) || cur.Until <= now.UnixNano() {
		return "", nil
	}
	return cur.Holder, err
}

// Once runs fn if holder can take the lock name for ttl (which must exceed the time fn
// takes), and says whether it ran. A node whose round failed keeps the lock until it
// expires: the next holder then starts from a clean state.
func Once(ctx context.Context, m Store, name, holder string, ttl time.Duration, log *slog.Logger, fn func(context.Context)) bool {
	ok, err := TryLock(ctx, m, name, holder, ttl, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("cluster lock", "lock", name, "err", err)
		}
		return false
	}
	if !ok {
		return false
	}
	fn(ctx)
	return true
}
