package auth

import "context"

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
)

// ImageFacts is what the policy needs to know about one image.
type ImageFacts struct {
	Owner      string // project id; empty: an image without owner, readable by all
	Visibility string // public, community, shared, private
	Status     string
	// Members maps member project ids to their status (pending, accepted, rejected); only
	// shared images grant access through it.
	Members map[string]string
}

// AllowImage decides whether pr may take act on an image, following Glance's default
// policies. member is the member project act concerns (for modify_member); otherwise empty.
func (p *Policy) AllowImage(ctx context.Context, pr Principal, img ImageFacts, act ImageAction, member string) (bool, error) {
	if pr.Admin {
		return true, nil
	}
	switch act {
	case ImagePublicize, ImageSetOwner:
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
