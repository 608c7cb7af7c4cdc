package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Glance's unified-limit resources (glance/quota/keystone.py). Sizes are MiB.
const (
	LimitSizeTotal      = "image_size_total"
	LimitStageTotal     = "image_stage_total"
	LimitCountTotal     = "image_count_total"
	LimitCountUploading = "image_count_uploading"
)

// LimitResources lists the resources in the order GET /v2/info/usage reports them.
var LimitResources = []string{LimitSizeTotal, LimitStageTotal, LimitCountTotal, LimitCountUploading}

const mib = 1 << 20

// LimitSource gives a project's unified limits as oslo.limit reads them (the project's own
// limit, else the registered default, else 0; -1 is unlimited). enabled is false when no
// limit is registered for the Image service: quotas are off, as Glance without
// use_keystone_limits.
type LimitSource interface {
	ProjectLimits(ctx context.Context, project string, resources []string) (limits map[string]int64, enabled bool, err error)
}

// usage is a project's ledger, kept by putImage in the transaction of every image write, so
// a check that reads it in the transaction of a change is atomic with that change.
// Glance recomputes the same numbers from its database on every check
// (glance/db/sqlalchemy/api.py); the ledger keeps them at hand.
//
//	quota:usage:<project>   usage
type usage struct {
	Count     int64 `json:"count"`     // images not killed, pending_delete or deleted
	Uploading int64 `json:"uploading"` // images saving, uploading or importing
	Size      int64 `json:"size"`      // bytes of the data of images that have it
	Stage     int64 `json:"stage"`     // bytes staged (uploading, importing)
}

func keyUsage(project string) string { return "quota:usage:" + project }

// usageOf is one image's share of its owner's usage.
func usageOf(img *Image) usage {
	var u usage
	if img == nil {
		return u
	}
	switch img.Status {
	case StatusKilled, StatusPendingDelete, StatusDeleted:
		return u
	case StatusSaving, StatusUploading, StatusImporting:
		u.Uploading = 1
	}
	u.Count = 1
	size := int64(0)
	if img.Size != nil {
		size = *img.Size
	}
	switch img.Status {
	case StatusActive, StatusDeactivated:
		// Glance counts an image once per store holding it (size × locations).
		u.Size = size * int64(max(1, len(img.Stores)))
		if img.Properties[ImportingToStoresProperty] != "" {
			// A copy-image in progress stages and uploads, as Glance counts it.
			u.Uploading, u.Stage = 1, size
		}
	case StatusSaving:
		u.Size = img.Reserved
	case StatusUploading, StatusImporting:
		u.Stage = size
		if img.Size == nil {
			u.Stage = img.Reserved
		}
	}
	return u
}

func (u usage) plus(o usage, sign int64) usage {
	return usage{Count: u.Count + sign*o.Count, Uploading: u.Uploading + sign*o.Uploading,
		Size: u.Size + sign*o.Size, Stage: u.Stage + sign*o.Stage}
}

// of reports the usage of one resource in its unit (MiB for sizes, floor as Glance), less
// reserved bytes.
func (u usage) of(resource string, reserved int64) int64 {
	switch resource {
	case LimitSizeTotal:
		return (u.Size - reserved) / mib
	case LimitStageTotal:
		return (u.Stage - reserved) / mib
	case LimitCountTotal:
		return u.Count
	case LimitCountUploading:
		return u.Uploading
	}
	return 0
}

func getUsage(tx meta.Tx, project string) (usage, error) {
	var u usage
	b, err := tx.Get(keyUsage(project))
	if errors.Is(err, meta.ErrNotFound) {
		return u, nil
	}
	if err != nil {
		return u, err
	}
	if err := json.Unmarshal(b, &u); err != nil {
		return u, fmt.Errorf("decode usage of %s: %w", project, err)
	}
	return u, nil
}

// account moves an image's share of usage from its old record to its new one.
func account(tx meta.Tx, old *Image, img Image) error {
	was, is := usageOf(old), usageOf(&img)
	oldOwner := img.Owner
	if old != nil {
		oldOwner = old.Owner
	}
	if was == is && oldOwner == img.Owner {
		return nil
	}
	for _, ch := range []struct {
		project string
		u       usage
		sign    int64
	}{{oldOwner, was, -1}, {img.Owner, is, 1}} {
		if ch.u == (usage{}) {
			continue
		}
		cur, err := getUsage(tx, ch.project)
		if err != nil {
			return err
		}
		b, err := json.Marshal(cur.plus(ch.u, ch.sign))
		if err != nil {
			return err
		}
		if err := tx.Put(keyUsage(ch.project), b); err != nil {
			return err
		}
	}
	return nil
}

// quotaCheck is one oslo.limit check: over if usage + delta > limit.
type quotaCheck struct {
	resource string
	delta    int64
	// reserved is the bytes of this very write the ledger already holds (its declared size,
	// reserved in the same transaction): left out of the usage the check reads, so the
	// numbers are Glance's (usage before, declared delta) while concurrent writes see each
	// other's reservations.
	reserved int64
}

// projectLimits reads a project's limits; nil means quotas are off.
func (c *Catalog) projectLimits(ctx context.Context, project string) (map[string]int64, error) {
	if c.Limits == nil || project == "" {
		return nil, nil
	}
	limits, enabled, err := c.Limits.ProjectLimits(ctx, project, LimitResources)
	if err != nil {
		return nil, fmt.Errorf("read the limits of project %s: %w", project, err)
	}
	if !enabled {
		return nil, nil
	}
	return limits, nil
}

// enforce applies checks against the project's usage as tx sees it, with Glance's 413 text
// (glance LimitExceeded around oslo.limit's ProjectOverLimit). limits nil: nothing to check.
func enforce(tx meta.Tx, project string, limits map[string]int64, checks ...quotaCheck) error {
	if limits == nil {
		return nil
	}
	u, err := getUsage(tx, project)
	if err != nil {
		return err
	}
	var over []string
	for _, ch := range checks {
		limit, cur := limits[ch.resource], u.of(ch.resource, ch.reserved)
		if limit >= 0 && cur+ch.delta > limit {
			over = append(over, fmt.Sprintf("Resource %s is over limit of %d due to current usage %d and delta %d",
				ch.resource, limit, cur, ch.delta))
		}
	}
	if len(over) == 0 {
		return nil
	}
	return &Error{Kind: OverLimit, Message: "The request returned a 413 Request Entity Too Large. This generally means " +
		"that rate limiting or a quota threshold was breached.\n\nThe response body:\n" +
		fmt.Sprintf("Project %s is over a limit for [%s]", project, strings.Join(over, ", "))}
}

// checkQuota runs enforce in a read transaction of its own: the pre-checks Glance makes
// before an operation changes anything (soft limits: usage before, declared delta).
func (c *Catalog) checkQuota(ctx context.Context, project string, checks ...quotaCheck) error {
	limits, err := c.projectLimits(ctx, project)
	if err != nil || limits == nil {
		return err
	}
	return c.meta.View(ctx, func(tx meta.Tx) error { return enforce(tx, project, limits, checks...) })
}

// sizeDelta is Glance's delta for a declared size: whole MiB, 0 when unknown.
func sizeDelta(size int64) int64 {
	if size <= 0 {
		return 0
	}
	return size / mib
}

// UsageEntry is one resource of GET /v2/info/usage.
type UsageEntry struct {
	Limit int64 `json:"limit"`
	Usage int64 `json:"usage"`
}

// Usage reports the caller's project's limits and usage (GET /v2/info/usage); empty when
// quotas are off.
func (c *Catalog) Usage(ctx context.Context, project string) (map[string]UsageEntry, error) {
	out := map[string]UsageEntry{}
	limits, err := c.projectLimits(ctx, project)
	if err != nil || limits == nil {
		return out, err
	}
	var u usage
	err = c.meta.View(ctx, func(tx meta.Tx) (err error) {
		u, err = getUsage(tx, project)
		return err
	})
	for _, res := range LimitResources {
		out[res] = UsageEntry{Limit: limits[res], Usage: u.of(res, 0)}
	}
	return out, err
}

// RebuildUsage recomputes every project's ledger from the image records: for a store
// written before the ledger existed. It runs in one transaction.
func (c *Catalog) RebuildUsage(ctx context.Context) error {
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyUsageVersion); err == nil {
			return nil
		}
		ids, err := tx.SetRange(idxAll, "", 0)
		if err != nil {
			return err
		}
		totals := map[string]usage{}
		for _, k := range ids {
			img, err := getImage(tx, idFromSortKey(k))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			totals[img.Owner] = totals[img.Owner].plus(usageOf(&img), 1)
		}
		for p, u := range totals {
			b, err := json.Marshal(u)
			if err != nil {
				return err
			}
			if err := tx.Put(keyUsage(p), b); err != nil {
				return err
			}
		}
		return tx.Put(keyUsageVersion, []byte("1"))
	})
}

// keyUsageVersion marks a store whose ledgers are kept by putImage.
const keyUsageVersion = "quota:usage-version"

// CheckPush applies image_size_total to a registry push into repo, as Harbor counts
// storage: the distinct blobs that manifests hold in the project's repositories, each once
// however many images share it. The registry asks when an upload starts (blobs nil:
// refused only when the project is already over) and before a manifest is stored, with
// the blobs it holds: those the project does not hold yet are added, and a manifest that
// would take the project over its limit is refused, so the push gets no manifest, tag or
// image (its blobs, held by nothing, are collected).
func (c *Catalog) CheckPush(ctx context.Context, pr auth.Principal, repo string, blobs []digest.Digest) error {
	if c.Limits == nil {
		return nil
	}
	proj, err := c.policy.RepositoryProject(ctx, repo)
	if err != nil {
		return nil // a repository of no project (--auth none): nothing to limit
	}
	limits, err := c.projectLimits(ctx, proj.ID)
	if err != nil || limits == nil {
		return err
	}
	limit := limits[LimitSizeTotal]
	if limit < 0 {
		return nil
	}
	namespace, _, _ := strings.Cut(repo, "/")
	used, added, err := c.store.NamespaceBytes(ctx, namespace, blobs)
	if err != nil {
		return err
	}
	if used+added <= limit*mib || (blobs != nil && added == 0) {
		return nil
	}
	return &Error{Kind: OverLimit, Message: fmt.Sprintf("project %s is over its image_size_total limit of %d MiB: "+
		"adding %d bytes to the %d bytes stored in its repositories would exceed it", proj.Name, limit, added, used)}
}
