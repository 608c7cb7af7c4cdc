package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// ManifestRecord is what the store knows of one manifest in one repository.
type ManifestRecord struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Holds lists the digests whose reference counts this manifest raised (itself included),
	// so deleting it lowers exactly those.
	Holds []digest.Digest `json:"holds"`
	// Pushed is when the manifest was put (Unix seconds).
	Pushed int64 `json:"pushed"`
}

// ManifestPut is a manifest to store: its exact bytes and what it refers to.
type ManifestPut struct {
	Digest       digest.Digest
	MediaType    string
	Content      []byte
	ArtifactType string
	Subject      digest.Digest
	Annotations  map[string]string
	// Required are blobs that must already be linked into the repository (config, layers).
	Required []digest.Digest
	// Children are manifests the content refers to (an index's entries); they are held when
	// present and may be absent (a sparse index).
	Children []digest.Digest
	// Tags to point at the manifest.
	Tags []string
	// AllowMissing accepts required blobs that are not in the repository (a sparse copy,
	// e.g. a mirror of some platforms only); only the present ones are held.
	AllowMissing bool
}

// MissingBlobsError lists the required blobs a manifest put did not find.
type MissingBlobsError struct{ Digests []digest.Digest }

func (e *MissingBlobsError) Error() string {
	return fmt.Sprintf("%v: %v", ErrBlobsMissing, e.Digests)
}

func (e *MissingBlobsError) Unwrap() error { return ErrBlobsMissing }

// PutManifest stores the manifest bytes and, in one transaction, links it into repo, raises
// the reference counts of what it holds, records its subject's referrer and moves its tags.
func (s *Store) PutManifest(ctx context.Context, repo string, m ManifestPut) error {
	if err := s.writeSmall(ctx, m.Digest, m.Content); err != nil {
		return err
	}
	if _, err := s.claimBlob(ctx, m.Digest, int64(len(m.Content)), ""); err != nil {
		return err
	}
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		var missing, present []digest.Digest
		for _, d := range m.Required {
			ok, err := linked(tx, repo, d)
			if err != nil {
				return err
			}
			if ok {
				present = append(present, d)
			} else {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 && !m.AllowMissing {
			return &MissingBlobsError{Digests: missing}
		}
		exists, err := tx.SetHas(keyRepoManifests(repo), m.Digest.String())
		if err != nil {
			return err
		}
		if !exists {
			if err := s.addManifest(tx, repo, m, present); err != nil {
				return err
			}
		}
		for _, tag := range m.Tags {
			if err := setTag(tx, repo, tag, m.Digest); err != nil {
				return err
			}
		}
		return addRepo(tx, repo)
	})
	if errors.Is(err, errBlobBusy) {
		return &MissingBlobsError{}
	}
	if err == nil {
		s.manifests.put(m.Digest, m.Content)
	}
	return err
}

// writeSmall stores small content (a manifest) as blob d unless it is stored already: one
// session, one final append, one commit.
func (s *Store) writeSmall(ctx context.Context, d digest.Digest, content []byte) error {
	var stored bool
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		r, _, err := getBlobRecord(tx, d)
		stored = r.Key != "" && !r.Deleting
		return err
	})
	if err != nil || stored {
		return err
	}
	w, err := s.stores[s.def].NewUpload(ctx, uuid.NewString())
	if err != nil {
		return fmt.Errorf("store %s: %w", d, err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(content), -1, true); err != nil {
		s.abort(ctx, w, d)
		return fmt.Errorf("store %s: %w", d, err)
	}
	return s.commitBlob(ctx, s.def, w, d, int64(len(content)))
}

// addManifest records a manifest new to repo and takes its references on itself, the blobs
// present of those it requires, and its children present in repo.
func (s *Store) addManifest(tx meta.Tx, repo string, m ManifestPut, blobs []digest.Digest) error {
	rec := ManifestRecord{
		Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Content)),
		ArtifactType: m.ArtifactType, Subject: m.Subject, Annotations: m.Annotations,
		Pushed: s.Now().Unix(),
	}
	hold := append([]digest.Digest{m.Digest}, blobs...)
	for _, c := range m.Children {
		ok, err := tx.SetHas(keyRepoManifests(repo), c.String())
		if err != nil {
			return err
		}
		if ok {
			hold = append(hold, c)
		}
	}
	seen := map[digest.Digest]bool{}
	for _, d := range hold {
		if seen[d] {
			continue
		}
		seen[d] = true
		if _, err := addRef(tx, d, 1); err != nil {
			return err
		}
		if d != m.Digest {
			if err := tx.SetAdd(keyHolders(repo, d), m.Digest.String()); err != nil {
				return err
			}
		}
		rec.Holds = append(rec.Holds, d)
	}
	if err := putJSON(tx, keyManifest(repo, m.Digest), rec); err != nil {
		return err
	}
	if err := tx.SetAdd(keyRepoManifests(repo), m.Digest.String()); err != nil {
		return err
	}
	if m.Subject != "" {
		return tx.SetAdd(keyReferrers(repo, m.Subject), m.Digest.String())
	}
	return nil
}

// addRef moves the reference count of blob d by delta and returns the new count (-1 when
// the blob has no record).
func addRef(tx meta.Tx, d digest.Digest, delta int64) (int64, error) {
	r, found, err := getBlobRecord(tx, d)
	if err != nil {
		return 0, err
	}
	if !found {
		return -1, nil // the blob went away; nothing to count
	}
	if r.Deleting {
		return 0, errBlobBusy
	}
	r.Refs += delta
	if r.Refs < 0 {
		r.Refs = 0
	}
	return r.Refs, putJSON(tx, keyBlob(d), r)
}

// setTag points tag at d, moving it off the manifest it pointed at before.
func setTag(tx meta.Tx, repo, tag string, d digest.Digest) error {
	old, err := tx.Get(keyTag(repo, tag))
	if err == nil {
		if err := tx.SetRemove(keyManifestTags(repo, digest.Digest(old)), tag); err != nil {
			return err
		}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	if err := tx.Put(keyTag(repo, tag), []byte(d)); err != nil {
		return err
	}
	if err := tx.SetAdd(keyRepoTags(repo), tag); err != nil {
		return err
	}
	return tx.SetAdd(keyManifestTags(repo, d), tag)
}

// ResolveTag returns the digest tag points at in repo, or ErrManifestUnknown.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d digest.Digest
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		v, err := tx.Get(keyTag(repo, tag))
		d = digest.Digest(v)
		return err
	})
	if errors.Is(err, meta.ErrNotFound) {
		return "", ErrManifestUnknown
	}
	return d, err
}

// GetManifest returns the record and the exact bytes of manifest d in repo.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (ManifestRecord, []byte, error) {
	var rec ManifestRecord
	err := s.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyManifest(repo, d), &rec) })
	if errors.Is(err, meta.ErrNotFound) {
		return rec, nil, ErrManifestUnknown
	}
	if err != nil {
		return rec, nil, fmt.Errorf("get manifest %s in %s: %w", d, repo, err)
	}
	if b, ok := s.manifests.get(d); ok {
		return rec, b, nil
	}
	f, size, err := s.openStored(ctx, d)
	if err != nil {
		return rec, nil, fmt.Errorf("read manifest %s: %w", d, err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return rec, nil, fmt.Errorf("read manifest %s: %w", d, err)
	}
	s.manifests.put(d, b)
	return rec, b, nil
}

// DeleteManifest removes manifest d from repo at once, with every tag pointing at it and its
// referrer entry, and releases what it held.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		var rec ManifestRecord
		err := getJSON(tx, keyManifest(repo, d), &rec)
		if errors.Is(err, meta.ErrNotFound) {
			return ErrManifestUnknown
		}
		if err != nil {
			return err
		}
		tags, err := tx.SetRange(keyManifestTags(repo, d), "", 0)
		if err != nil {
			return err
		}
		for _, tag := range tags {
			if err := dropTag(tx, repo, tag, d); err != nil {
				return err
			}
		}
		for _, h := range rec.Holds {
			n, err := addRef(tx, h, -1)
			if err != nil {
				return err
			}
			if n == 0 {
				// Its last holder is gone: GC looks at it once the grace period is over.
				if err := s.enqueueReview(tx, h); err != nil {
					return err
				}
			}
			if err := tx.SetRemove(keyHolders(repo, h), d.String()); err != nil {
				return err
			}
		}
		if rec.Subject != "" {
			if err := tx.SetRemove(keyReferrers(repo, rec.Subject), d.String()); err != nil {
				return err
			}
		}
		if err := tx.Delete(keyManifest(repo, d)); err != nil {
			return err
		}
		if err := tx.SetRemove(keyRepoManifests(repo), d.String()); err != nil {
			return err
		}
		return dropRepoIfEmpty(tx, repo)
	})
}

// DeleteTag removes tag from repo at once; the manifest stays.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		v, err := tx.Get(keyTag(repo, tag))
		if errors.Is(err, meta.ErrNotFound) {
			return ErrManifestUnknown
		}
		if err != nil {
			return err
		}
		if err := dropTag(tx, repo, tag, digest.Digest(v)); err != nil {
			return err
		}
		return dropRepoIfEmpty(tx, repo)
	})
}

func dropTag(tx meta.Tx, repo, tag string, d digest.Digest) error {
	if err := tx.Delete(keyTag(repo, tag)); err != nil {
		return err
	}
	if err := tx.SetRemove(keyRepoTags(repo), tag); err != nil {
		return err
	}
	return tx.SetRemove(keyManifestTags(repo, d), tag)
}

// Tags lists up to n tags of repo after last, in byte order, and whether more follow. A
// repository that does not exist is ErrNameUnknown.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	var tags []string
	var more bool
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		ok, err := tx.SetHas(setRepos, repo)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNameUnknown
		}
		limit := 0
		if n > 0 {
			limit = n + 1
		}
		tags, err = tx.SetRange(keyRepoTags(repo), last, limit)
		if n > 0 && len(tags) > n {
			tags, more = tags[:n], true
		}
		return err
	})
	return tags, more, err
}

// Referrers returns the records of the manifests in repo whose subject is d.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest) ([]ManifestRecord, error) {
	var out []ManifestRecord
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		ds, err := tx.SetRange(keyReferrers(repo, d), "", 0)
		if err != nil {
			return err
		}
		for _, r := range ds {
			var rec ManifestRecord
			err := getJSON(tx, keyManifest(repo, digest.Digest(r)), &rec)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// Repositories lists up to n repository names after last, and whether more follow.
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]string, bool, error) {
	var repos []string
	var more bool
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		limit := 0
		if n > 0 {
			limit = n + 1
		}
		repos, err = tx.SetRange(setRepos, last, limit)
		if n > 0 && len(repos) > n {
			repos, more = repos[:n], true
		}
		return err
	})
	return repos, more, err
}

// TagManifest points tag at manifest d of repo.
func (s *Store) TagManifest(ctx context.Context, repo, tag string, d digest.Digest) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		ok, err := tx.SetHas(keyRepoManifests(repo), d.String())
		if err != nil {
			return err
		}
		if !ok {
			return ErrManifestUnknown
		}
		return setTag(tx, repo, tag, d)
	})
}

// Holders lists the manifests of repo that hold d (as config, layer or child).
func (s *Store) Holders(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	var out []digest.Digest
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		hs, err := tx.SetRange(keyHolders(repo, d), "", 0)
		for _, h := range hs {
			out = append(out, digest.Digest(h))
		}
		return err
	})
	return out, err
}

// ManifestTags lists the tags of repo that point at manifest d.
func (s *Store) ManifestTags(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	var out []string
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		out, err = tx.SetRange(keyManifestTags(repo, d), "", 0)
		return err
	})
	return out, err
}
