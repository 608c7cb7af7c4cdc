// Package meta is the metadata store: a small transactional key-value store with sorted sets,
// with two backends that pass the same contract tests: an embedded one (bbolt, one file, the
// default) and Redis (many server nodes share it). Everything the service knows besides blob
// bytes — tags, repository membership, manifests, upload sessions — lives here, and Redis is
// the source of truth, not a cache.
package meta

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Tx.Get for a key that does not exist.
var ErrNotFound = errors.New("meta: not found")

// ErrConflict is returned by Update when a concurrent writer kept the transaction from
// committing after every retry.
var ErrConflict = errors.New("meta: transaction conflict")

// Store runs transactions over the metadata.
type Store interface {
	// View runs fn in a read-only transaction. On bbolt it sees one snapshot; on Redis each
	// read sees the latest committed state.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction: every write in fn commits atomically or not
	// at all, and commits only if nothing fn read was changed meanwhile. fn may run more than
	// once, so it must not have effects outside the transaction, and variables it sets for
	// the caller must be reset at its start.
	Update(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// Tx is one transaction. Reads see the transaction's own earlier writes.
type Tx interface {
	// Get returns the value of key, or ErrNotFound.
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key string) error

	// SetAdd adds member to the sorted set; adding an existing member is not an error.
	SetAdd(set, member string) error
	// SetRemove removes member; removing a missing member is not an error.
	SetRemove(set, member string) error
	SetHas(set, member string) (bool, error)
	// SetRange returns up to limit members greater than after, in byte order; limit <= 0 means
	// all of them.
	SetRange(set, after string, limit int) ([]string, error)
	// SetRangeDesc returns up to limit members less than before ("": from the greatest), in
	// reverse byte order.
	SetRangeDesc(set, before string, limit int) ([]string, error)
	SetLen(set string) (int64, error)
}
