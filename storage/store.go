package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Store is the registry's storage: named blob stores plus the repository model in the
// metadata store. Both the Registry API and the catalog use it; it holds no HTTP notions.
type Store struct {
	stores map[string]BlobStore
	names  []string // in configuration order
	def    string   // where new blobs go
	meta   meta.Store
	// Now is the clock; tests replace it.
	Now func() time.Time
	// UploadLimit caps the open upload sessions of one project (0: no cap).
	UploadLimit int
	// Log takes the failures of clean-ups that cannot fail the call they follow.
	Log *slog.Logger
	// GCGrace is how long a blob that nothing holds waits in the review queue before GC
	// looks at it (DefaultGCGrace when 0); every node sharing the store should agree.
	GCGrace time.Duration
	// Cache is the node's image cache, in front of the remote stores (Cache.WrapAll); nil
	// without --cache-dir.
	Cache *Cache
	// PrefetchDelay is how long an image queued for the cache waits before the prefetcher
	// takes it (RunPrefetch).
	PrefetchDelay time.Duration

	uploadLocks keyedMutex
	manifests   *contentCache
}

// DefaultStoreName names the one blob store of a server run without --store.
const DefaultStoreName = "default"

// NamedStore is a blob store under the name operators and records use.
type NamedStore struct {
	Name  string
	Store BlobStore
}

// New returns a Store over one blob store (named DefaultStoreName) and the metadata store.
func New(b BlobStore, m meta.Store) *Store {
	s, _ := NewStores(m, []NamedStore{{DefaultStoreName, b}}, "")
	return s
}

// NewStores returns a Store over several named blob stores; def names the one new blobs go
// to ("" : the first).
func NewStores(m meta.Store, stores []NamedStore, def string) (*Store, error) {
	if len(stores) == 0 {
		return nil, errors.New("no blob store configured")
	}
	s := &Store{stores: map[string]BlobStore{}, meta: m, Now: time.Now, Log: slog.Default(), manifests: newContentCache(64 << 20)}
	for _, n := range stores {
		if _, dup := s.stores[n.Name]; dup {
			return nil, fmt.Errorf("blob store %q configured twice", n.Name)
		}
		s.stores[n.Name] = n.Store
		s.names = append(s.names, n.Name)
	}
	s.def = def
	if def == "" {
		s.def = stores[0].Name
	}
	if _, ok := s.stores[s.def]; !ok {
		return nil, fmt.Errorf("default store %q is not configured", def)
	}
	return s, nil
}

// Meta exposes the metadata store to packages that keep their own records beside ours.
func (s *Store) Meta() meta.Store { return s.meta }

// BlobStore returns the blob store named name ("": the default one).
func (s *Store) BlobStore(name string) (BlobStore, bool) {
	if name == "" {
		name = s.def
	}
	b, ok := s.stores[name]
	return b, ok
}

// StoreNames lists the configured blob stores in configuration order; DefaultStore names
// the one new blobs go to.
func (s *Store) StoreNames() []string { return append([]string(nil), s.names...) }

// DefaultStore names the blob store new blobs go to.
func (s *Store) DefaultStore() string { return s.def }

// Ping asks the metadata store and every blob store that can tell whether they answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.meta.Ping(ctx); err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	for _, name := range s.names {
		if p, ok := s.stores[name].(Pinger); ok {
			if err := p.Ping(ctx); err != nil {
				return fmt.Errorf("blob store %s: %w", name, err)
			}
		}
	}
	return nil
}

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
	// Store and Key say where the bytes are. They are set once the bytes are committed, so
	// a record that names them always points at a whole blob. A record without them is
	// either one written before blobs had keys (the bytes are at fileKey in the store named
	// DefaultStoreName, the data directory's, else the default store) or a commit in
	// progress; a derived blob has none either (keyDerived).
	Store string `json:"store,omitempty"`
	Key   string `json:"key,omitempty"`
	// Copies are further whole copies of the bytes in other stores (Glance's multi-store:
	// an image copied or imported to several stores). Each names a store at most once and
	// never Store; reads fall back along Store, then Copies, when one does not answer.
	Copies []Location `json:"copies,omitempty"`
}

// Location is where one copy of a blob's bytes is: a configured store and its key there.
type Location struct {
	Store string `json:"store"`
	Key   string `json:"key"`
}

// location is where a record's bytes are.
func (s *Store) location(r blobRecord, d digest.Digest) (string, string) {
	if r.Key == "" {
		if _, ok := s.stores[DefaultStoreName]; ok {
			return DefaultStoreName, fileKey(d)
		}
		return s.def, fileKey(d)
	}
	return r.Store, r.Key
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

// touchBlob records that d (of size) is committed or being committed and in use now, and
// reports whether the record already names where the bytes are. It refuses while GC holds
// the blob.
func (s *Store) touchBlob(tx meta.Tx, d digest.Digest, size int64) (bool, error) {
	r, _, err := getBlobRecord(tx, d)
	if err != nil {
		return false, err
	}
	if r.Deleting {
		return false, errBlobBusy
	}
	r.Size = size
	r.Touched = s.Now().UnixNano()
	if err := tx.SetAdd(setBlobs, d.String()); err != nil {
		return false, err
	}
	if r.Refs == 0 {
		// Nothing holds it yet: unless a manifest claims it within the grace period, GC
		// reviews it then.
		if err := s.enqueueReview(tx, d); err != nil {
			return false, err
		}
	}
	return r.Key != "", putJSON(tx, keyBlob(d), r)
}

// claimBlob runs touchBlob in its own transaction, waiting out a GC pass that holds d. It
// reports whether d's bytes are stored already in the store named name.
func (s *Store) claimBlob(ctx context.Context, d digest.Digest, size int64, name string) (bool, error) {
	for {
		var stored bool
		err := s.meta.Update(ctx, func(tx meta.Tx) (err error) {
			if stored, err = s.touchBlob(tx, d, size); err != nil || !stored {
				return err
			}
			r, _, err := getBlobRecord(tx, d)
			stored = slices.ContainsFunc(s.locations(r, d), func(l Location) bool { return l.Store == name })
			return err
		})
		if !errors.Is(err, errBlobBusy) {
			return stored, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// commitBlob makes what w holds the blob d (size bytes) in the blob store named name, and
// records where it is. It claims d first, so a GC pass removing an older copy of d finishes
// before ours lands; when d is stored already, ours is dropped, never committed. Two
// concurrent commits of one digest both land; the first to record its key wins and the
// other's object is removed (keppel's ON CONFLICT DO NOTHING).
func (s *Store) commitBlob(ctx context.Context, name string, w UploadWriter, d digest.Digest, size int64) error {
	stored, err := s.claimBlob(ctx, d, size, name)
	if err == nil && stored {
		s.abort(ctx, w, d)
		return nil
	}
	if err != nil {
		s.abort(ctx, w, d)
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	key, err := w.Commit(ctx, d)
	if err != nil {
		s.abort(ctx, w, d)
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	var dup bool
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		dup = false // Update may run this more than once
		r, found, err := getBlobRecord(tx, d)
		if err != nil {
			return err
		}
		if !found || r.Deleting {
			return errBlobBusy
		}
		if r.Key != "" {
			locs := s.locations(r, d)
			if i := slices.IndexFunc(locs, func(l Location) bool { return l.Store == name }); i >= 0 {
				dup = locs[i].Key != key
				return nil
			}
		}
		if r.Key != "" {
			// Bytes held elsewhere already: this is another copy, in store name.
			r.Copies = append(r.Copies, Location{name, key})
		} else {
			r.Store, r.Key = name, key
		}
		if err := tx.Put(keyStoreKey(name, key), []byte(d.String())); err != nil {
			return err
		}
		return putJSON(tx, keyBlob(d), r)
	})
	if err != nil {
		// Nothing names the object: it goes now, or GC finds it without an owner. On the
		// filesystem the key is the content address, which GC (holding the digest) removes.
		if name != "" && key != fileKey(d) {
			if _, rerr := s.stores[name].Remove(context.WithoutCancel(ctx), key); rerr != nil {
				s.Log.Warn("remove an unrecorded blob object; gc takes it", "digest", d, "key", key, "err", rerr)
			}
		}
		if errors.Is(err, errBlobBusy) {
			return ErrCollected
		}
		return fmt.Errorf("record blob %s: %w", d, err)
	}
	if dup {
		if _, err := s.stores[name].Remove(ctx, key); err != nil {
			s.Log.Warn("remove a duplicate copy of a blob; gc takes it", "digest", d, "key", key, "err", err)
		}
	}
	return nil
}

// abort drops what an upload that will not be committed stored; a failure leaves it to GC.
func (s *Store) abort(ctx context.Context, w UploadWriter, d digest.Digest) {
	if err := w.Abort(context.WithoutCancel(ctx)); err != nil {
		s.Log.Warn("drop the data of an upload not committed; gc takes it", "digest", d, "err", err)
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
	if _, err := s.touchBlob(tx, d, size); err != nil {
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
