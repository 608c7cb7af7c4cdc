package auth

import (
	"context"
	"slices"
)

// ImageAction is what a caller wants to do to an image (Glance's policy rule names).
type ImageAction string

// Image actions, after glance/policies/image.py.
const (
	ImageGet          ImageAction = "get_image"
	ImageDownload     ImageAction = "download_image"
	ImageModify       ImageAction = "modify_image"
	ImageDelete       ImageAction = "delete_image"
	ImageUpload       ImageAction = "upload_image"
	ImagePublicize    ImageAction = "publicize_image"
	ImageCommunitize  ImageAction = "communitize_image"
	ImageDeactivate   ImageAction = "deactivate"
	ImageReactivate   ImageAction = "reactivate"
	ImageAddMember    ImageAction = "add_member"
	ImageDeleteMember ImageAction = "delete_member"
	ImageGetMembers   ImageAction = "get_members"
	ImageModifyMember ImageAction = "modify_member"
	ImageSetOwner     ImageAction = "set_owner"
	// ImageTasksAPI is Glance's tasks_api_access: the /v2/tasks API, admins only.
	ImageTasksAPI ImageAction = "tasks_api_access"
	// ImageCopy is Glance's copy_image: the copy-image import method, admins only ("for now
	// restricted to project-admins", glance/policies/image.py).
	ImageCopy ImageAction = "copy_image"
	// ImageDeleteLocation is Glance's delete_image_location: DELETE /v2/stores/{s}/{id},
	// admins only.
	ImageDeleteLocation ImageAction = "delete_image_location"
	// StoresInfoDetail is Glance's stores_info_detail: GET /v2/info/stores/detail, admins
	// only (Glance also lets its service role, which this server does not have).
	StoresInfoDetail ImageAction = "stores_info_detail"
	// The image cache API of one node (glance/policies/cache.py), admins only: list the
	// cache and queue, queue an image, remove images from either.
	ImageCacheList   ImageAction = "cache_list"
	ImageCacheImage  ImageAction = "cache_image"
	ImageCacheDelete ImageAction = "cache_delete"
)

// ImageFacts is what the policy needs to know about one image.
type ImageFacts struct {
	Owner      string // project id; empty: an image without owner, readable by all
	Visibility string // public, community, shared, private
	Status     string
	// Members maps member project ids to their status (pending, accepted, rejected); only
	// shared images grant access through it.
	Members map[string]string
	// Repository holds the image's content ("" before it has data): a registry token acts
	// on the image only through its grants there.
	Repository string
	// Signature is the image's signature status (unsigned, untrusted, invalid, verified).
	Signature string
}

// tokenAction is what a registry token must grant on an image's repository for act: reads
// need pull, a delete (of its manifest) needs delete; nothing else is done with a token.
func tokenAction(act ImageAction) Action {
	switch act {
	case ImageGet, ImageDownload:
		return ActionPull
	case ImageDelete:
		return ActionDelete
	}
	return ""
}

// AllowImage decides whether pr may take act on an image, following Glance's default
// policies. member is the member project act concerns (for modify_member); otherwise empty.
func (p *Policy) AllowImage(ctx context.Context, pr Principal, img ImageFacts, act ImageAction, member string) (bool, error) {
	if pr.Bounded {
		// A registry token acts on an image through its repository grants, then as its user.
		ta := tokenAction(act)
		if ta == "" || img.Repository == "" || !pr.granted(img.Repository, ta) {
			return false, nil
		}
		pr.Bounded = false
	}
	if pr.Admin {
		return true, nil
	}
	switch act {
	case ImagePublicize, ImageSetOwner, ImageTasksAPI, ImageCopy, ImageDeleteLocation, StoresInfoDetail,
		ImageCacheList, ImageCacheImage, ImageCacheDelete:
		return false, nil
	case ImageGet, ImageDownload:
		return p.canRead(ctx, pr, img, act == ImageDownload)
	case ImageGetMembers:
		if ok, err := p.hasRoleOn(ctx, pr, img.Owner, readerRoles...); ok || err != nil {
			return ok, err
		}
		return p.isMember(ctx, pr, img, readerRoles...)
	case ImageModifyMember:
		return p.hasRoleOn(ctx, pr, member, writerRoles...)
	}
	// Everything else changes the image: a member of the owning project.
	if img.Owner == "" {
		return false, nil
	}
	return p.hasRoleOn(ctx, pr, img.Owner, writerRoles...)
}

// canRead: the owner's readers, readers of a member project of a shared image, anyone for
// public and community images (anonymous only for public ones, when allowed). Downloading a
// deactivated image is for admins only.
func (p *Policy) canRead(ctx context.Context, pr Principal, img ImageFacts, download bool) (bool, error) {
	if download && img.Status == "deactivated" {
		return false, nil
	}
	if pr.Anonymous {
		return img.Visibility == "public" && p.AnonymousPull, nil
	}
	if img.Owner == "" || img.Visibility == "public" || img.Visibility == "community" {
		return true, nil
	}
	if ok, err := p.hasRoleOn(ctx, pr, img.Owner, readerRoles...); ok || err != nil {
		return ok, err
	}
	if img.Visibility != "shared" {
		return false, nil
	}
	return p.isMember(ctx, pr, img, readerRoles...)
}

// isMember reports whether pr holds one of roles on a member project of img (any status: a
// pending member may read the image, it only does not list it).
func (p *Policy) isMember(ctx context.Context, pr Principal, img ImageFacts, roles ...Role) (bool, error) {
	for project := range img.Members {
		if ok, err := p.hasRoleOn(ctx, pr, project, roles...); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (p *Policy) hasRoleOn(ctx context.Context, pr Principal, project string, roles ...Role) (bool, error) {
	if project == "" || pr.Anonymous {
		return false, nil
	}
	have, err := p.RolesOn(ctx, pr, project)
	if err != nil {
		return false, err
	}
	return hasRole(have, roles...), nil
}

// ImageListing is what a caller asked an image list for: Glance's visibility filter ("" for
// none, "all", or one visibility) and member_status filter (accepted, pending, rejected or
// all).
type ImageListing struct {
	Visibility   string
	MemberStatus string
}

// Projects returns the projects pr holds a role on: its token's project when scoped,
// otherwise every project it is assigned to (when the directory can tell).
func (p *Policy) Projects(ctx context.Context, pr Principal) ([]string, error) {
	switch {
	case pr.Anonymous:
		return nil, nil
	case pr.Scoped:
		return []string{pr.ProjectID}, nil
	}
	type assigner interface {
		Assignments(ctx context.Context, userID, projectID string) ([]Assignment, error)
	}
	a, ok := p.Directory.(assigner)
	if !ok {
		return nil, nil
	}
	as, err := a.Assignments(ctx, pr.UserID, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, x := range as {
		if !slices.Contains(out, x.ProjectID) {
			out = append(out, x.ProjectID)
		}
	}
	return out, nil
}

// ListImage is Glance's listing rule, the one place it differs from reading: the caller
// may read every image listed, but a community image of another project is listed only
// when community images are asked for, and a shared image only to member projects whose
// membership has the status asked for (accepted by default). Killed and deleted images are
// never listed. projects are the caller's (Projects), img.Members the memberships of those
// projects; the rule does no lookups, so a page of a large catalog costs no round trips.
func (p *Policy) ListImage(pr Principal, projects []string, img ImageFacts, l ImageListing) bool {
	if pr.Bounded || img.Status == "killed" || img.Status == "deleted" || img.Status == "pending_delete" {
		return false
	}
	owned := img.Owner != "" && slices.Contains(projects, img.Owner)
	switch l.Visibility {
	case "":
		if img.Visibility == "community" && !owned {
			return false
		}
	case "all":
	default:
		if img.Visibility != l.Visibility {
			return false
		}
	}
	if pr.Anonymous {
		return img.Visibility == "public" && p.AnonymousPull
	}
	if pr.Admin || owned || img.Visibility == "public" || img.Visibility == "community" {
		return true
	}
	if img.Visibility != "shared" {
		return false
	}
	for project, status := range img.Members {
		if slices.Contains(projects, project) && (l.MemberStatus == "all" || status == l.MemberStatus) {
			return true
		}
	}
	return false
}
