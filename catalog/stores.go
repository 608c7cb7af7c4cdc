package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Glance's multi-store over the named blob stores: which stores hold an image's data (the
// image's `stores`), choosing where uploads, staging and imports go, copy-image, and
// removing an image's data from one store. Blobs are stored once per store for the whole
// server (storage keeps the copies); an image records the stores it was placed in, and a
// copy of a blob leaves a store only when no other image placed there holds that blob.

// Properties Glance's import flow keeps on the image while it writes to several stores.
const (
	// ImportingToStoresProperty lists the stores an import or copy still has to write.
	ImportingToStoresProperty = "os_glance_importing_to_stores"
	// FailedImportProperty lists the stores an import or copy could not write.
	FailedImportProperty = "os_glance_failed_import"
)

// StoreInfo is one store of GET /v2/info/stores[/detail].
type StoreInfo struct {
	ID          string
	Description string
	Default     bool
	// Type and Properties are for /detail (admins).
	Type       string
	Properties map[string]any
}

// Stores lists the configured stores, in configuration order; nil when the server runs
// without --store, where Glance has no multi-store API (404).
func (c *Catalog) Stores() []StoreInfo {
	if !c.MultiStore {
		return nil
	}
	var out []StoreInfo
	for _, name := range c.store.StoreNames() {
		b, _ := c.store.BlobStore(name)
		info := StoreInfo{ID: name, Default: name == c.store.DefaultStore(), Type: "unknown", Properties: map[string]any{}}
		if d, ok := b.(storage.Describer); ok {
			info.Type, info.Properties = d.Describe()
		}
		info.Description = info.Type + " store " + name
		out = append(out, info)
	}
	return out
}

// StoresDetail is Stores with types and properties, for admins (stores_info_detail).
func (c *Catalog) StoresDetail(ctx context.Context, pr auth.Principal) ([]StoreInfo, error) {
	ok, err := c.policy.AllowImage(ctx, pr, auth.ImageFacts{}, auth.StoresInfoDetail, "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(Forbidden, "You are not authorized to complete %s action.", auth.StoresInfoDetail)
	}
	return c.Stores(), nil
}

// unknownStore is glance_store's UnknownScheme, which Glance answers for a store id that
// is not configured.
func unknownStore(kind Kind, name string) error {
	return errorf(kind, "Unknown scheme '%s' found in URI", name)
}

// chooseStore checks the store an upload or staging names ("" : the default). Without
// --store a named store is ignored, as Glance ignores X-Image-Meta-Store without
// enabled_backends.
func (c *Catalog) chooseStore(name string) (string, error) {
	if !c.MultiStore || name == "" {
		return "", nil
	}
	if !slices.Contains(c.store.StoreNames(), name) {
		return "", unknownStore(BadRequest, name)
	}
	return name, nil
}

// ImageStores lists the stores holding img's data, sorted (Glance's `stores`, joined by
// commas). An image made before stores were recorded (or pushed through the registry) is
// in the stores that hold its disk blob.
func (c *Catalog) ImageStores(ctx context.Context, img Image) []string {
	if !hasData(img) {
		return nil
	}
	stores := img.Stores
	if len(stores) == 0 {
		d, err := digest.Parse(img.DiskDigest)
		if err == nil {
			stores, _ = c.store.BlobStores(ctx, d)
		}
	}
	out := slices.Clone(stores)
	slices.Sort(out)
	return out
}

// recordedStores is img's recorded stores, sorted, or fallback (ImageStores of it read
// before a transaction: the blob's stores are not read inside one).
func recordedStores(img Image, fallback []string) []string {
	if len(img.Stores) == 0 {
		return slices.Clone(fallback)
	}
	out := slices.Clone(img.Stores)
	slices.Sort(out)
	return out
}

func hasData(img Image) bool {
	return img.DiskDigest != "" && (img.Status == StatusActive || img.Status == StatusDeactivated)
}

// importTargets resolves where an import writes (glance/common/utils.py
// get_stores_from_request): every store with all_stores, else the stores named, else the
// X-Image-Meta-Store header, else the default store. An unknown store is a Conflict, as
// Glance answers it on import.
func (c *Catalog) importTargets(req ImportRequest) ([]string, error) {
	if !c.MultiStore {
		return nil, nil
	}
	var stores []string
	switch {
	case req.AllStores:
		if req.Stores != nil || req.HeaderStore != "" {
			return nil, errorf(BadRequest, "All_stores parameter can't be used with x-image-meta-store header or stores parameter")
		}
		stores = c.store.StoreNames()
	case req.Stores != nil:
		if req.HeaderStore != "" {
			return nil, errorf(BadRequest, "Stores parameter and x-image-meta-store header can't be both specified")
		}
		stores = req.Stores
	case req.HeaderStore != "":
		stores = []string{req.HeaderStore}
	default:
		stores = []string{c.store.DefaultStore()}
	}
	if len(stores) == 0 {
		return nil, errorf(BadRequest, "'stores' must name at least one store")
	}
	var out []string
	for _, s := range stores {
		if !slices.Contains(c.store.StoreNames(), s) {
			return nil, unknownStore(Conflict, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// copyTargets applies copy-image's rules to the stores asked for: with all_stores the
// stores already holding the image are skipped; naming one of them is refused.
func (c *Catalog) copyTargets(ctx context.Context, img Image, req ImportRequest) ([]string, error) {
	have := c.ImageStores(ctx, img)
	var out []string
	for _, s := range req.targets {
		switch {
		case !slices.Contains(have, s):
			out = append(out, s)
		case !req.AllStores:
			return nil, errorf(BadRequest, "Image %s is already present at store '%s'", img.ID, s)
		}
	}
	if len(out) == 0 {
		return nil, errorf(Conflict, "Image %s is already present in every store", img.ID)
	}
	return out, nil
}

// startImportProgress is what an import to stores shows at its start: every target left,
// none failed.
func startImportProgress(img *Image, targets []string) {
	if targets == nil {
		return
	}
	img.Properties[ImportingToStoresProperty] = strings.Join(targets, ",")
	img.Properties[FailedImportProperty] = ""
}

// placeData writes blob d, already in one store, to each target in turn, showing what is
// left in os_glance_importing_to_stores and what failed in os_glance_failed_import. With
// mustSucceed the first failure ends it with that error; otherwise failures are recorded
// and the stores written are returned. record, if true, adds each store written to the
// image's stores as it lands (copy-image on an active image).
func (c *Catalog) placeData(ctx context.Context, id string, d digest.Digest, targets []string, mustSucceed, record bool) ([]string, error) {
	var done, failed []string
	for i, s := range targets {
		err := c.store.CopyBlob(ctx, d, s)
		if err == nil && record {
			// Recorded only if the copy is still there (releaseCopy of another image may
			// have dropped a copy this one found): otherwise copied again, once.
			if err = c.setPlaceProgress(ctx, id, s, true, targets[i:], failed); errors.Is(err, errCopyGone) {
				err = c.store.CopyBlob(ctx, d, s)
			}
		}
		if err != nil {
			c.Log.Warn("import to a store failed", "image", id, "store", s, "err", err)
			failed = append(failed, s)
		} else {
			done = append(done, s)
		}
		left := targets[i+1:]
		if err != nil && mustSucceed {
			left = nil
		}
		if perr := c.setPlaceProgress(ctx, id, s, err == nil && record, left, failed); perr != nil {
			return done, perr
		}
		if err != nil && mustSucceed {
			return done, fmt.Errorf("import to store %s: %w", s, err)
		}
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("import to stores %v failed", targets)
	}
	return done, nil
}

// setPlaceProgress writes the progress properties, and adds store to the image's stores
// when added.
func (c *Catalog) setPlaceProgress(ctx context.Context, id, store string, added bool, left, failed []string) error {
	var before []string
	if added {
		img, _, err := c.load(ctx, id)
		if err != nil {
			return err
		}
		before = c.ImageStores(ctx, img)
	}
	return c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, id)
		if err != nil {
			return err
		}
		next := cur.clone()
		next.Properties[ImportingToStoresProperty] = strings.Join(left, ",")
		next.Properties[FailedImportProperty] = strings.Join(failed, ",")
		if len(left) == 0 && cur.Status == StatusActive {
			next.Lease = "" // the copy is done
		}
		if added && hasData(cur) {
			d, err := storage.ParseDigest(cur.DiskDigest)
			if err != nil {
				return err
			}
			if in, err := c.store.HasCopy(tx, d, store); err != nil || !in {
				if err == nil {
					err = errCopyGone
				}
				return err
			}
			next.Stores = recordedStores(cur, before)
			if !slices.Contains(next.Stores, store) {
				next.Stores = append(next.Stores, store)
			}
		}
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		return ev.put(tx, &cur, next)
	})
}

// copyImage is the work of the copy-image method: the active image's disk blob streamed
// from a store that holds it into each target store. The image stays active throughout.
func (c *Catalog) copyImage(ctx context.Context, img Image, req ImportRequest) error {
	d, err := storage.ParseDigest(img.DiskDigest)
	if err != nil {
		return fmt.Errorf("image %s has no data to copy: %w", img.ID, err)
	}
	_, err = c.placeData(ctx, img.ID, d, req.targets, req.mustSucceed(), true)
	return err
}

// DeleteFromStore removes an image's data from one store (DELETE
// /v2/stores/{store_id}/{image_id}, Glance's delete_from_store): admins only, an active
// image, never its last store. The bytes leave that store unless another image placed
// there holds the same blob.
func (c *Catalog) DeleteFromStore(ctx context.Context, pr auth.Principal, store, id string) error {
	if !c.MultiStore {
		return ErrNotFound
	}
	if !slices.Contains(c.store.StoreNames(), store) {
		return errorf(Conflict, "The selected store %s is not available on this node.", store)
	}
	img, ms, err := c.load(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && img.Status == StatusDeleted) {
		return errorf(NotFound, "Failed to find image %s", id)
	}
	if err != nil {
		return err
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageDeleteLocation); err != nil {
		return err
	}
	var d digest.Digest
	before := c.ImageStores(ctx, img)
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, id)
		if err != nil {
			return err
		}
		if cur.Status != StatusActive {
			return errorf(Conflict, "It's not allowed to remove image data from store if image status is not 'active'")
		}
		if cur.Properties[ImportingToStoresProperty] != "" {
			return errorf(Conflict, "Image %s is being copied to stores %s", id, cur.Properties[ImportingToStoresProperty])
		}
		stores := recordedStores(cur, before)
		if len(stores) <= 1 {
			return errorf(Conflict, "Cannot delete image data from the only store containing it. Consider deleting the image instead.")
		}
		if !slices.Contains(stores, store) {
			return errorf(NotFound, "Image %s is not stored in store %s.", id, store)
		}
		if d, err = storage.ParseDigest(cur.DiskDigest); err != nil {
			return err
		}
		next := cur.clone()
		next.Stores = slices.DeleteFunc(stores, func(s string) bool { return s == store })
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		return ev.put(tx, &cur, next)
	})
	if err != nil {
		return err
	}
	return c.releaseCopy(ctx, id, d, store)
}

// releaseCopy removes blob d from store unless an image other than id, placed in that
// store, holds it (blobs are shared by digest between images). The check runs in the
// transaction that drops the copy, and an image records a store only in a transaction that
// finds the copy there (setPlaceProgress), so a copy another image is being placed on
// never goes from under it.
func (c *Catalog) releaseCopy(ctx context.Context, id string, d digest.Digest, store string) error {
	repos, err := c.store.BlobRepositories(ctx, d)
	if err != nil {
		return fmt.Errorf("release blob %s from store %s: %w", d, store, err)
	}
	keep := func(tx meta.Tx) (bool, error) {
		for _, repo := range repos {
			imgs, err := mergeScan(tx, walk{sets: []string{idxRepo(repo)}, dir: newestFirst, limit: 1}, func(img Image) (bool, error) {
				// An image without recorded stores (older, or pushed) is in every store
				// its blob is in: it needs this copy too.
				return img.ID != id && img.DiskDigest == d.String() && hasData(img) &&
					(len(img.Stores) == 0 || slices.Contains(img.Stores, store)), nil
			})
			if err != nil || len(imgs) > 0 {
				return len(imgs) > 0, err
			}
		}
		return false, nil
	}
	if _, err := c.store.RemoveBlobCopyUnless(ctx, d, store, keep); err != nil && !errors.Is(err, storage.ErrLastCopy) {
		return fmt.Errorf("remove blob %s from store %s: %w", d, store, err)
	}
	return nil
}

// errCopyGone: the copy a store was to hold of an image's blob was dropped meanwhile.
var errCopyGone = errors.New("the blob's copy in the store was removed meanwhile")

// endImportProgress is what a failed import shows: nothing left to write, and every store
// it did not write among the failed ones.
func (c *Catalog) endImportProgress(ctx context.Context, id string, targets []string) {
	if targets == nil {
		return
	}
	err := c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, id)
		if err != nil {
			return err
		}
		next := cur.copyEnded(c.Now())
		if cur.Status != StatusActive { // an import: requeue drops its lock and lease
			next.Lease = cur.Lease
			next.Properties[ImportLockProperty] = cur.Properties[ImportLockProperty]
			if next.Properties[ImportLockProperty] == "" {
				delete(next.Properties, ImportLockProperty)
			}
		}
		return ev.put(tx, &cur, next)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.Log.Error("record a failed import's stores", "image", id, "err", err)
	}
}

func splitStores(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// copyable checks a copy-image request against the image as it is (active, in which
// stores) and returns the stores to copy to.
func (c *Catalog) copyable(ctx context.Context, pr auth.Principal, id string, req ImportRequest) ([]string, error) {
	img, ms, err := c.load(ctx, id)
	if err == nil && img.Status == StatusDeleted {
		err = ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageCopy); err != nil {
		return nil, err
	}
	if err := importable(img, ImportCopyImage); err != nil {
		return nil, err
	}
	return c.copyTargets(ctx, img, req)
}
