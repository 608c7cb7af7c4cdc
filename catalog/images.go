package catalog

import (
	"context"
	"sort"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// NewImage is what a client may set when creating an image.
type NewImage struct {
	ID              string
	Name            *string
	Owner           string
	Visibility      Visibility
	Protected       bool
	Hidden          bool
	DiskFormat      *string
	ContainerFormat *string
	MinDisk         int64
	MinRAM          int64
	Tags            []string
	Properties      map[string]string
}

// callerProject is the project a principal acts for: its token's scope.
func callerProject(pr auth.Principal) string { return pr.ProjectID }

// ReservedProperty reports property names clients may never set (Glance reserves them).
func ReservedProperty(k string) bool {
	return strings.HasPrefix(k, "os_glance") || k == "location" || k == "deleted" || k == "deleted_at"
}

// Create adds a queued image owned by the caller's project (or, for an admin, any).
func (c *Catalog) Create(ctx context.Context, pr auth.Principal, in NewImage) (Image, error) {
	now := c.Now().UTC().Truncate(1e9)
	img := Image{
		ID: in.ID, Name: in.Name, Owner: in.Owner, Status: StatusQueued, Visibility: in.Visibility,
		Protected: in.Protected, Hidden: in.Hidden, DiskFormat: in.DiskFormat,
		ContainerFormat: in.ContainerFormat, MinDisk: in.MinDisk, MinRAM: in.MinRAM,
		Tags: dedupe(in.Tags), Properties: in.Properties, CreatedAt: now, UpdatedAt: now,
	}
	if img.ID == "" {
		img.ID = c.NewID()
	} else if !ValidID(img.ID) {
		return img, errorf(BadRequest, "id must be a UUID")
	}
	if img.Visibility == "" {
		img.Visibility = VisibilityShared
	}
	if img.Properties == nil {
		img.Properties = map[string]string{}
	}
	for k := range img.Properties {
		if ReservedProperty(k) || !c.policy.AllowProperty(pr, k, auth.PropertyCreate) {
			return img, errorf(Forbidden, "attribute '%s' is reserved", k)
		}
	}
	if img.Owner == "" {
		img.Owner = callerProject(pr)
	}
	if img.Owner == "" && !pr.Admin { // an admin without a project (--auth none) makes ownerless images, as Glance noauth
		return img, errorf(BadRequest, "the image needs an owner project (use a project-scoped token)")
	}
	if err := img.validate(); err != nil {
		return img, err
	}
	if err := c.checkProperties(ctx, img.Owner, img.Properties, nil); err != nil {
		return img, err
	}
	if img.Owner != callerProject(pr) && !pr.Admin {
		return img, errorf(Forbidden, "you are not permitted to create images owned by '%s'", img.Owner)
	}
	if err := c.allow(ctx, pr, img, nil, auth.ImageModify); err != nil {
		return img, err
	}
	if err := c.checkVisibilityChange(ctx, pr, img, nil); err != nil {
		return img, err
	}
	limits, err := c.projectLimits(ctx, callerProject(pr))
	if err != nil {
		return img, err
	}
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		if _, err := tx.Get(keyImage(img.ID)); err == nil {
			return errorf(Conflict, "an image with id %s exists", img.ID)
		}
		// Glance checks the caller's project, not the image's owner (images.py create).
		if err := enforce(tx, callerProject(pr), limits, quotaCheck{resource: LimitCountTotal, delta: 1}); err != nil {
			return err
		}
		return ev.put(tx, nil, img)
	})
	return c.readable(pr, img), err
}

// ValidID reports whether id is a UUID in canonical form.
func ValidID(id string) bool {
	u, err := parseUUID(id)
	return err == nil && u == strings.ToLower(id)
}

func dedupe(tags []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, t := range tags {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// allow asks the policy; a refusal on an image the caller cannot even see is ErrNotFound, so
// existence is not revealed (as Glance does).
func (c *Catalog) allow(ctx context.Context, pr auth.Principal, img Image, ms map[string]Member, act auth.ImageAction) error {
	f := facts(img, ms)
	ok, err := c.policy.AllowImage(ctx, pr, f, act, "")
	if err != nil || ok {
		return err
	}
	if act != auth.ImageGet {
		if seen, err := c.policy.AllowImage(ctx, pr, f, auth.ImageGet, ""); err == nil && seen {
			return errorf(Forbidden, "%s is not allowed", act)
		}
	}
	return ErrNotFound
}

// checkVisibilityChange: making an image public is for admins; community needs the
// communitize rule.
func (c *Catalog) checkVisibilityChange(ctx context.Context, pr auth.Principal, img Image, old *Image) error {
	if old != nil && old.Visibility == img.Visibility {
		return nil
	}
	act := auth.ImageAction("")
	switch img.Visibility {
	case VisibilityPublic:
		act = auth.ImagePublicize
	case VisibilityCommunity:
		act = auth.ImageCommunitize
	default:
		return nil
	}
	ok, err := c.policy.AllowImage(ctx, pr, facts(img, nil), act, "")
	if err != nil {
		return err
	}
	if !ok {
		return errorf(Forbidden, "not allowed to set visibility to %s", img.Visibility)
	}
	return nil
}

// load reads an image and its members in one view.
func (c *Catalog) load(ctx context.Context, id string) (Image, map[string]Member, error) {
	var img Image
	var ms map[string]Member
	if !ValidID(id) {
		return img, nil, ErrNotFound
	}
	err := c.meta.View(ctx, func(tx meta.Tx) (err error) {
		if img, err = getImage(tx, id); err != nil {
			return err
		}
		ms, err = members(tx, id)
		return err
	})
	return img, ms, err
}

// Get returns an image the caller may see. Deleted images are visible to admins only.
func (c *Catalog) Get(ctx context.Context, pr auth.Principal, id string) (Image, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil {
		return img, err
	}
	if img.Status == StatusDeleted && !pr.Admin {
		return img, ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageGet); err != nil {
		return img, err
	}
	return c.readable(pr, img), nil
}

// readable is img as pr may see it: without the extra properties the property protections
// keep from pr (Glance omits them from every answer).
func (c *Catalog) readable(pr auth.Principal, img Image) Image {
	if c.policy.Protections == nil {
		return img
	}
	out := img.clone()
	for k := range out.Properties {
		if !c.policy.AllowProperty(pr, k, auth.PropertyRead) {
			delete(out.Properties, k)
		}
	}
	return out
}

// allowPropertyChange asks the property protections about one change of an extra property
// of img: adding a new one is a create, setting an existing one an update, removing one a
// delete; a property the caller may not read cannot be changed either.
func (c *Catalog) allowPropertyChange(pr auth.Principal, img Image, key, op string) error {
	if c.policy.Protections == nil {
		return nil
	}
	_, exists := img.Properties[key]
	act := auth.PropertyCreate
	switch {
	case op == "remove":
		act = auth.PropertyDelete
	case exists:
		act = auth.PropertyUpdate
	}
	if (exists && !c.policy.AllowProperty(pr, key, auth.PropertyRead)) || !c.policy.AllowProperty(pr, key, act) {
		return errorf(Forbidden, "attribute '%s' is reserved", key)
	}
	return nil
}

// mutate loads an image, checks act, lets fn change it and stores it, all in one
// transaction. fn must not keep state between runs (Update may retry it).
func (c *Catalog) mutate(ctx context.Context, pr auth.Principal, id string, act auth.ImageAction, fn func(img *Image) error) (Image, error) {
	return c.mutateChecked(ctx, pr, id, act, fn, nil)
}

// mutateChecked is mutate with a check that runs in the transaction after the image is
// written, so it sees the change (quota checks made after a status change, as Glance's).
func (c *Catalog) mutateChecked(ctx context.Context, pr auth.Principal, id string, act auth.ImageAction,
	fn func(img *Image) error, check func(tx meta.Tx, img Image) error) (Image, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil {
		return img, err
	}
	if img.Status == StatusDeleted {
		return img, ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, act); err != nil {
		return img, err
	}
	var out Image
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, id)
		if err != nil {
			return err
		}
		if cur.Status == StatusDeleted {
			return ErrGone
		}
		next := cur.clone()
		if err := fn(&next); err != nil {
			return err
		}
		if err := next.validate(); err != nil {
			return err
		}
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		out = next
		if err := ev.put(tx, &cur, next); err != nil {
			return err
		}
		if check != nil {
			return check(tx, next)
		}
		return nil
	})
	return out, err
}

// AddTag tags an image (idempotent).
func (c *Catalog) AddTag(ctx context.Context, pr auth.Principal, id, tag string) error {
	if tag == "" || len(tag) > MaxTagLen {
		return errorf(BadRequest, "tag must be 1-%d characters", MaxTagLen)
	}
	_, err := c.mutate(ctx, pr, id, auth.ImageModify, func(img *Image) error {
		for _, t := range img.Tags {
			if t == tag {
				return nil
			}
		}
		img.Tags = append(img.Tags, tag)
		return nil
	})
	return err
}

// DeleteTag removes a tag; a missing tag is ErrNotFound.
func (c *Catalog) DeleteTag(ctx context.Context, pr auth.Principal, id, tag string) error {
	_, err := c.mutate(ctx, pr, id, auth.ImageModify, func(img *Image) error {
		for i, t := range img.Tags {
			if t == tag {
				img.Tags = append(img.Tags[:i], img.Tags[i+1:]...)
				return nil
			}
		}
		return errorf(NotFound, "tag %s not found", tag)
	})
	return err
}

// Deactivate makes an active image unreadable to all but admins (no-op if already).
func (c *Catalog) Deactivate(ctx context.Context, pr auth.Principal, id string) error {
	return c.setActivation(ctx, pr, id, StatusDeactivated, auth.ImageDeactivate)
}

// Reactivate undoes Deactivate.
func (c *Catalog) Reactivate(ctx context.Context, pr auth.Principal, id string) error {
	return c.setActivation(ctx, pr, id, StatusActive, auth.ImageReactivate)
}

func (c *Catalog) setActivation(ctx context.Context, pr auth.Principal, id string, to Status, act auth.ImageAction) error {
	_, err := c.mutate(ctx, pr, id, act, func(img *Image) error {
		if img.Status != StatusActive && img.Status != StatusDeactivated {
			return errorf(Forbidden, "not allowed in status %s", img.Status)
		}
		img.Status = to
		return nil
	})
	return err
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkProperties asks the property checker, when there is one, about keys of props.
func (c *Catalog) checkProperties(ctx context.Context, owner string, props map[string]string, keys []string) error {
	if c.Properties == nil || len(props) == 0 {
		return nil
	}
	return c.Properties.CheckImageProperties(ctx, owner, props, keys)
}
