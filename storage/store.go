package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Store is the registry's storage: blob files plus the repository model in the metadata
// store. Both the Registry API and the catalog use it; it holds no HTTP notions.
type Store struct {
	files *Files
	meta  meta.Store
	// Now is the clock; tests replace it.
	Now func() time.Time
	// UploadLimit caps the open upload sessions of one project (0: no cap).
	UploadLimit int
	// Log takes the failures of clean-ups that cannot fail the call they follow.
	Log *slog.Logger

	uploadLocks keyedMutex
	manifests   *contentCache
}

// New returns a Store over the blob files and the metadata store.
func New(files *Files, m meta.Store) *Store {
	return &Store{files: files, meta: m, Now: time.Now, Log: slog.Default(), manifests: newContentCache(64 << 20)}
}

// Meta exposes the metadata store to packages that keep their own records beside ours.
func (s *Store) Meta() meta.Store { return s.meta }

// Files exposes the blob files (for sendfile-friendly reads).
func (s *Store) Files() *Files { return s.files }

// blobRecord is the server-wide record of one committed blob.
type blobRecord struct {
	Size int64 `json:"size"`
	// Refs counts the (repository, manifest) pairs that hold this blob: as config, layer,
	// child manifest, or as the manifest itself.
	Refs int64 `json:"refs"`
	// Touched is when the blob was last committed, linked or mounted (Unix nanoseconds); GC
	// spares blobs touched within its grace period.
	Touched int64 `json:"touched"`
	// Deleting marks a blob whose file GC is removing; nobody may link it meanwhile.
	Deleting bool `json:"deleting,omitempty"`
}

func getJSON(tx meta.Tx, key string, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

func putJSON(tx meta.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return tx.Put(key, b)
}

func getBlobRecord(tx meta.Tx, d digest.Digest) (blobRecord, bool, error) {
	var r blobRecord
	err := getJSON(tx, keyBlob(d), &r)
	if errors.Is(err, meta.ErrNotFound) {
		return r, false, nil
	}
	return r, err == nil, err
}

// errBlobBusy means GC is removing the blob right now; the caller retries shortly.
var errBlobBusy = errors.New("blob is being garbage-collected")

// touchBlob records that d (of size) is committed and in use now. It refuses while GC holds
// the blob.
func (s *Store) touchBlob(tx meta.Tx, d digest.Digest, size int64) error {
	r, _, err := getBlobRecord(tx, d)
	if err != nil {
		return err
	}
	if r.Deleting {
		return errBlobBusy
	}
	r.Size = size
	r.Touched = s.Now().UnixNano()
	if err := tx.SetAdd(setBlobs, d.String()); err != nil {
		return err
	}
	return putJSON(tx, keyBlob(d), r)
}

// claimBlob runs touchBlob in its own transaction, waiting out a GC pass that holds d.
func (s *Store) claimBlob(ctx context.Context, d digest.Digest, size int64) error {
	for {
		err := s.meta.Update(ctx, func(tx meta.Tx) error { return s.touchBlob(tx, d, size) })
		if !errors.Is(err, errBlobBusy) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// addRepo records repo in the repository list.
func addRepo(tx meta.Tx, repo string) error { return tx.SetAdd(setRepos, repo) }

// dropRepoIfEmpty removes repo from the list once it holds no blob, manifest or tag.
func dropRepoIfEmpty(tx meta.Tx, repo string) error {
	for _, set := range []string{keyRepoBlobs(repo), keyRepoManifests(repo), keyRepoTags(repo)} {
		n, err := tx.SetLen(set)
		if err != nil || n > 0 {
			return err
		}
	}
	return tx.SetRemove(setRepos, repo)
}

// linkBlob makes d readable through repo. The blob's record must exist (a commit claimed it,
// or another repository links it): if GC removed it meanwhile, its file is gone too, and
// linking would point at nothing.
func (s *Store) linkBlob(tx meta.Tx, repo string, d digest.Digest, size int64) error {
	_, found, err := getBlobRecord(tx, d)
	if err != nil {
		return err
	}
	if !found {
		return errBlobBusy
	}
	if err := s.touchBlob(tx, d, size); err != nil {
		return err
	}
	if err := tx.SetAdd(keyRepoBlobs(repo), d.String()); err != nil {
		return err
	}
	if err := tx.SetAdd(keyBlobLinks(d), repo); err != nil {
		return err
	}
	return addRepo(tx, repo)
}

// keyedMutex hands out one mutex per key, dropped when nobody holds it.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
