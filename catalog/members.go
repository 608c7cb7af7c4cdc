package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Member statuses.
const (
	MemberPending  = "pending"
	MemberAccepted = "accepted"
	MemberRejected = "rejected"
)

// MaxMembers is Glance's image_member_quota.
const MaxMembers = 128

// Member is one project an image is shared with.
type Member struct {
	ImageID   string    `json:"image_id"`
	MemberID  string    `json:"member_id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var errNotShared = errorf(Forbidden, "only shared images have members")

// AddMember shares a shared image with project (status pending).
func (c *Catalog) AddMember(ctx context.Context, pr auth.Principal, id, project string) (Member, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil || img.Status == StatusDeleted {
		return Member{}, ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageAddMember); err != nil {
		return Member{}, err
	}
	if img.Visibility != VisibilityShared {
		return Member{}, errNotShared
	}
	if project == "" || len(project) > 255 {
		return Member{}, errorf(BadRequest, "member must be a project id")
	}
	now := c.Now().UTC().Truncate(1e9)
	m := Member{ImageID: id, MemberID: project, Status: MemberPending, CreatedAt: now, UpdatedAt: now}
	err = c.meta.Update(ctx, func(tx meta.Tx) error {
		existing, err := tx.SetRange(keyMembers(id), "", 0)
		if err != nil {
			return err
		}
		if _, ok := findMember(existing, project); ok {
			return errorf(Conflict, "%s is already a member of image %s", project, id)
		}
		n, err := tx.SetLen(keyMembers(id))
		if err != nil {
			return err
		}
		if n >= MaxMembers {
			return errorf(TooMany, "at most %d members", MaxMembers)
		}
		if err := putMember(tx, img, m); err != nil {
			return err
		}
		return tx.SetAdd(keyMembers(id), project)
	})
	return m, err
}

// putMember stores a membership and lists the image in the member project's index.
func putMember(tx meta.Tx, img Image, m Member) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := tx.Put(keyMember(m.ImageID, m.MemberID), b); err != nil {
		return err
	}
	return indexAdd(tx, idxMember(m.MemberID), img)
}

// Members lists an image's members: all of them for the owner, the caller's own row for a
// member.
func (c *Catalog) Members(ctx context.Context, pr auth.Principal, id string) ([]Member, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil || img.Status == StatusDeleted {
		return nil, ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageGetMembers); err != nil {
		return nil, err
	}
	if img.Visibility != VisibilityShared {
		return nil, errNotShared
	}
	owner, err := c.policy.AllowImage(ctx, pr, facts(img, ms), auth.ImageAddMember, "")
	if err != nil {
		return nil, err
	}
	out := []Member{}
	for _, p := range sortedMemberKeys(ms) {
		if owner || p == callerProject(pr) {
			out = append(out, ms[p])
		} else if ok, err := c.policy.AllowImage(ctx, pr, facts(img, ms), auth.ImageModifyMember, p); err != nil {
			return nil, fmt.Errorf("may %s see member %s of image %s: %w", pr.UserID, p, id, err)
		} else if ok {
			out = append(out, ms[p])
		}
	}
	return out, nil
}

// GetMember returns one membership; anything the caller may not see is ErrNotFound.
func (c *Catalog) GetMember(ctx context.Context, pr auth.Principal, id, project string) (Member, error) {
	list, err := c.Members(ctx, pr, id)
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			return Member{}, ErrNotFound
		}
		return Member{}, err
	}
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = m.MemberID
	}
	if i, ok := findMember(ids, project); ok {
		return list[i], nil
	}
	return Member{}, ErrNotFound
}

// findMember finds project among member ids as Glance on MySQL does (its member column
// compares without regard to case): the exact id, else the first that differs only in case.
// It returns the index of the id in ids.
func findMember(ids []string, project string) (int, bool) {
	fold := -1
	for i, p := range ids {
		if p == project {
			return i, true
		}
		if fold < 0 && strings.EqualFold(p, project) {
			fold = i
		}
	}
	return fold, fold >= 0
}

// memberKey is the key in ms of project's membership (see findMember).
func memberKey(ms map[string]Member, project string) (string, bool) {
	keys := sortedMemberKeys(ms)
	i, ok := findMember(keys, project)
	if !ok {
		return "", false
	}
	return keys[i], true
}

// SetMemberStatus accepts, rejects or re-pends a membership: only the member project (or an
// admin) may.
func (c *Catalog) SetMemberStatus(ctx context.Context, pr auth.Principal, id, project, status string) (Member, error) {
	if status != MemberPending && status != MemberAccepted && status != MemberRejected {
		return Member{}, errorf(BadRequest, "invalid status %q", status)
	}
	img, ms, err := c.load(ctx, id)
	if err != nil || img.Status == StatusDeleted {
		return Member{}, ErrNotFound
	}
	project, ok := memberKey(ms, project)
	if !ok {
		return Member{}, ErrNotFound
	}
	m := ms[project]
	if err := c.allow(ctx, pr, img, ms, auth.ImageGet); err != nil {
		return Member{}, err
	}
	allowed, err := c.policy.AllowImage(ctx, pr, facts(img, ms), auth.ImageModifyMember, project)
	if err != nil {
		return Member{}, err
	}
	if !allowed {
		return Member{}, errorf(Forbidden, "only the member project may change its status")
	}
	m.Status = status
	m.UpdatedAt = c.Now().UTC().Truncate(1e9)
	err = c.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyMember(id, project)); err != nil {
			return ErrNotFound
		}
		return putMember(tx, img, m)
	})
	return m, err
}

// RemoveMember ends a membership (the owner does this).
func (c *Catalog) RemoveMember(ctx context.Context, pr auth.Principal, id, project string) error {
	img, ms, err := c.load(ctx, id)
	if err != nil || img.Status == StatusDeleted {
		return ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageDeleteMember); err != nil {
		return err
	}
	if img.Visibility != VisibilityShared {
		return errNotShared
	}
	project, ok := memberKey(ms, project)
	if !ok {
		return ErrNotFound
	}
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		if err := tx.Delete(keyMember(id, project)); err != nil {
			return err
		}
		if err := tx.SetRemove(keyMembers(id), project); err != nil {
			return err
		}
		return indexRemove(tx, idxMember(project), img)
	})
}

func sortedMemberKeys(ms map[string]Member) []string {
	m := map[string]string{}
	for k := range ms {
		m[k] = ""
	}
	return sortedKeys(m)
}
