package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Facts answers the policy's questions about registry content (auth.ContentFacts) from the
// catalog's records and the store's: which image, if any, governs a manifest. It needs no
// policy, so it is built first and given to the policy the catalog then uses.
type Facts struct {
	store *storage.Store
}

// NewFacts returns the content facts over store.
func NewFacts(store *storage.Store) *Facts { return &Facts{store: store} }

// maxSubjectDepth bounds how far a chain of subjects is followed (a signature of an SBOM of
// an image is two steps); a longer chain is governed by its project.
const maxSubjectDepth = 4

// Manifest says what governs manifest d of repo: the image it is part of, else the image
// its subject (followed through referrers of referrers) is part of, else its project.
func (f *Facts) Manifest(ctx context.Context, repo string, d digest.Digest) (auth.Content, error) {
	for depth := 0; depth <= maxSubjectDepth; depth++ {
		img, ms, found, err := imageFor(ctx, f.store.Meta(), repo, d)
		if err != nil {
			return auth.Content{}, err
		}
		if found {
			kind := auth.ImageContent
			if depth > 0 {
				kind = auth.ReferrerContent
			}
			return auth.Content{Kind: kind, Image: facts(img, ms)}, nil
		}
		rec, _, err := f.store.GetManifest(ctx, repo, d)
		if errors.Is(err, storage.ErrManifestUnknown) {
			break
		}
		if err != nil {
			return auth.Content{}, fmt.Errorf("manifest %s of %s: %w", d, repo, err)
		}
		if rec.Subject == "" {
			break
		}
		d = rec.Subject
	}
	return auth.Content{Kind: auth.ProjectContent}, nil
}

// BlobHolders lists the manifests of repo that hold blob d.
func (f *Facts) BlobHolders(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	return f.store.Holders(ctx, repo, d)
}

// RepositoryImages lists the images with content in repo that a reader could be given:
// active and deactivated ones.
func (f *Facts) RepositoryImages(ctx context.Context, repo string) ([]auth.ImageFacts, error) {
	var out []auth.ImageFacts
	err := f.store.Meta().View(ctx, func(tx meta.Tx) error {
		out = nil
		keys, err := tx.SetRange(idxRepo(repo), "", 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			img, err := getImage(tx, idFromSortKey(k))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if img.Status != StatusActive && img.Status != StatusDeactivated {
				continue
			}
			ms, err := members(tx, img.ID)
			if err != nil {
				return err
			}
			out = append(out, facts(img, ms))
		}
		return nil
	})
	return out, err
}

// imageFor returns the image manifest d of repo stands for, if any.
func imageFor(ctx context.Context, m meta.Store, repo string, d digest.Digest) (Image, map[string]Member, bool, error) {
	var img Image
	var ms map[string]Member
	found := false
	err := m.View(ctx, func(tx meta.Tx) error {
		found = false
		id, err := tx.Get(keyImageRef(repo, d.String()))
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if img, err = getImage(tx, string(id)); err != nil {
			return err
		}
		found = true
		ms, err = members(tx, img.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return img, nil, false, nil
	}
	return img, ms, found, err
}

// DeleteManifest deletes the image manifest d stands for (Deleting a manifest through the
// Registry API deletes the image).
func (c *Catalog) DeleteManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (bool, error) {
	img, _, found, err := imageFor(ctx, c.meta, repo, d)
	if err != nil || !found {
		return found, err
	}
	return true, c.Delete(ctx, pr, img.ID)
}
