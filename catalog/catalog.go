package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Catalog keeps image records in the metadata store and their bytes in the blob store.
type Catalog struct {
	store  *storage.Store
	meta   meta.Store
	policy *auth.Policy
	// Now and NewID are replaceable in tests.
	Now   func() time.Time
	NewID func() string
	// HashAlgo is os_hash_algo for new uploads: sha256 (the OCI digest, one computation) or
	// sha512 (Glance's default).
	HashAlgo string
	// Limits gives projects' unified limits (quotas); nil: no quotas.
	Limits LimitSource
	// Certificates fetches the certificates of Glance image signatures (img_signature*) from
	// the key manager; nil: an image with the four properties cannot get data.
	Certificates CertificateSource
	// Attester signs the disk-inspection attestation of every image activated (attest.go);
	// nil: none is written.
	Attester Attester
	// Log takes the failures of clean-ups that cannot fail the call they follow.
	Log *slog.Logger
	// node is this process's lease id; beats what it has seen of other writers' heartbeats
	// (lease.go).
	node  string
	beats beats
	// MultiStore turns on Glance's multi-store API over the named blob stores (the server
	// was given --store): store choice on upload, staging and import, copy-image, per-store
	// delete, the images' `stores`.
	MultiStore bool
	// Properties checks image property values against metadata definitions on create and
	// patch (--validate-metadef-properties); nil: values are not checked.
	Properties PropertyChecker
	// sigWork counts background re-verifications (signatures.go).
	sigWork sync.WaitGroup
	// sigLocks serialise re-verifications of one manifest in this process, so an older
	// verdict cannot overwrite a newer one (striped by the manifest's key).
	sigLocks [64]sync.Mutex
}

// PropertyChecker checks image properties against definitions of them (metadefs).
type PropertyChecker interface {
	// CheckImageProperties checks props[k] for each k of keys (all of props when nil) of an
	// image owned by owner; a value that does not fit is a BadRequest refusal.
	CheckImageProperties(ctx context.Context, owner string, props map[string]string, keys []string) error
}

// New returns the catalog over store, deciding access with policy.
func New(store *storage.Store, policy *auth.Policy) *Catalog {
	c := &Catalog{
		store: store, meta: store.Meta(), policy: policy,
		Now: time.Now, NewID: uuid.NewString, HashAlgo: "sha256", Log: slog.Default(), node: uuid.NewString(),
	}
	return c
}

// Metadata keys of the catalog (beside storage/layout.go's):
//
//	image:<id>                   Image
//	set idx:all                  every image not deleted, as timeKey (created, id)
//	set idx:owner:<project>      images owned by the project
//	set idx:public               public images
//	set idx:community            community images
//	set idx:member:<project>     shared images the project is a member of
//	set idx:repo:<repo>          images whose content is in the repository
//	set <any idx set>|name       the same images as <name>\x00timeKey, in name order
//	member:<id>:<project>        Member
//	set members:<id>             member projects of an image
//	imageref:<repo>@<digest>     the image a manifest stands for
//	set deleted                  deleted images awaiting purge, as sortKey|id
//	set idx:leased, node:<id>    images being written and their writers (lease.go)
func keyImage(id string) string              { return "image:" + id }
func keyMember(id, project string) string    { return "member:" + id + ":" + project }
func keyMembers(id string) string            { return "members:" + id }
func keyImageRef(repo, digest string) string { return "imageref:" + repo + "@" + digest }
func idxOwner(project string) string         { return "idx:owner:" + project }
func idxMember(project string) string        { return "idx:member:" + project }
func idxRepo(repo string) string             { return "idx:repo:" + repo }

const (
	idxAll       = "idx:all"
	idxPublic    = "idx:public"
	idxCommunity = "idx:community"
	setDeleted   = "deleted"
)

// sortKey orders images newest first in byte order, ties broken by id: the deleted set's
// members, and the index sets' of index versions 1 and 2.
func sortKey(t time.Time, id string) string {
	return fmt.Sprintf("%016x|%s", uint64(math.MaxInt64-t.UnixNano()), id)
}

func idFromSortKey(k string) string {
	return k[strings.LastIndex(k, "|")+1:]
}

// Every index set has a twin ordered by name, then oldest first, then by id (members
// "<name>\x00<timeKey>"): walked forwards it is Glance's order for sort=name:asc (whose
// tie-breakers, created_at and id, take the one direction given), backwards sort=name:desc,
// and the images of one name are one range of it, in creation order either way.
func byName(set string) string { return set + "|name" }

func nameKey(img Image) string { return deref(img.Name) + "\x00" + timeKey(img.CreatedAt, img.ID) }

// timeKey orders images oldest first in byte order, ties broken by id: the index sets'
// members. Walked backwards it is newest first with ties by id descending, Glance's default
// order (created_at, id, both desc); created_at:asc walks it forwards (id asc).
func timeKey(t time.Time, id string) string {
	return fmt.Sprintf("%016x|%s", uint64(t.UnixNano())^(1<<63), id)
}

// oldNameKey is the twin member of index version 1 (name, then newest first).
func oldNameKey(img Image) string { return deref(img.Name) + "\x00" + sortKey(img.CreatedAt, img.ID) }

// indexAdd and indexRemove keep a set and its name-ordered twin together.
func indexAdd(tx meta.Tx, set string, img Image) error {
	if err := tx.SetAdd(set, timeKey(img.CreatedAt, img.ID)); err != nil {
		return err
	}
	return tx.SetAdd(byName(set), nameKey(img))
}

func indexRemove(tx meta.Tx, set string, img Image) error {
	if err := tx.SetRemove(set, timeKey(img.CreatedAt, img.ID)); err != nil {
		return err
	}
	return tx.SetRemove(byName(set), nameKey(img))
}

func getImage(tx meta.Tx, id string) (Image, error) {
	var img Image
	b, err := tx.Get(keyImage(id))
	if errors.Is(err, meta.ErrNotFound) {
		return img, ErrNotFound
	}
	if err != nil {
		return img, err
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("decode image %s: %w", id, err)
	}
	return img, nil
}

// indexes lists the sets an image belongs to.
func (img *Image) indexes() []string {
	if img.Status == StatusDeleted {
		return nil
	}
	out := []string{idxAll}
	if img.Owner != "" {
		out = append(out, idxOwner(img.Owner))
	}
	if img.Repository != "" {
		out = append(out, idxRepo(img.Repository))
	}
	switch img.Visibility {
	case VisibilityPublic:
		out = append(out, idxPublic)
	case VisibilityCommunity:
		out = append(out, idxCommunity)
	}
	return out
}

// putImage writes img and moves it between indexes to match old (nil for a new image).
func putImage(tx meta.Tx, old *Image, img Image) error {
	if err := signatureProps(tx, &img); err != nil {
		return err
	}
	b, err := json.Marshal(img)
	if err != nil {
		return err
	}
	if err := tx.Put(keyImage(img.ID), b); err != nil {
		return err
	}
	key := sortKey(img.CreatedAt, img.ID)
	want := map[string]bool{}
	for _, s := range img.indexes() {
		want[s] = true
	}
	renamed := old != nil && deref(old.Name) != deref(img.Name)
	if old != nil {
		for _, s := range old.indexes() {
			if !want[s] || renamed {
				if err := indexRemove(tx, s, *old); err != nil {
					return err
				}
			}
		}
		if renamed {
			if err := renameMemberships(tx, *old, img); err != nil {
				return err
			}
		}
	}
	for s := range want {
		if err := indexAdd(tx, s, img); err != nil {
			return err
		}
	}
	if img.Status == StatusDeleted {
		if err := tx.SetAdd(setDeleted, key); err != nil {
			return err
		}
	}
	if err := account(tx, old, img); err != nil {
		return err
	}
	return updateLeased(tx, old, img)
}

// renameMemberships moves a renamed image in its member projects' name-ordered indexes.
func renameMemberships(tx meta.Tx, old, img Image) error {
	projects, err := tx.SetRange(keyMembers(img.ID), "", 0)
	if err != nil {
		return err
	}
	for _, p := range projects {
		if err := tx.SetRemove(byName(idxMember(p)), nameKey(old)); err != nil {
			return err
		}
		if err := tx.SetAdd(byName(idxMember(p)), nameKey(img)); err != nil {
			return err
		}
	}
	return nil
}

// members returns an image's member projects and their statuses.
func members(tx meta.Tx, id string) (map[string]Member, error) {
	projects, err := tx.SetRange(keyMembers(id), "", 0)
	if err != nil {
		return nil, err
	}
	out := map[string]Member{}
	for _, p := range projects {
		var m Member
		b, err := tx.Get(keyMember(id, p))
		if err != nil {
			continue
		}
		if json.Unmarshal(b, &m) == nil {
			out[p] = m
		}
	}
	return out, nil
}

// facts is what the policy needs of img.
func facts(img Image, ms map[string]Member) auth.ImageFacts {
	f := auth.ImageFacts{Owner: img.Owner, Visibility: string(img.Visibility), Status: string(img.Status), Repository: img.Repository,
		Signature: img.Properties[PropSignatureStatus]}
	if img.Visibility == VisibilityShared && len(ms) > 0 {
		f.Members = map[string]string{}
		for p, m := range ms {
			f.Members[p] = m.Status
		}
	}
	return f
}

func getJSONTx(tx meta.Tx, key string, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
