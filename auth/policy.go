package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Action is what a caller wants to do to a repository (the registry token scope grammar).
type Action string

// Registry actions.
const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Principal is whoever made a request.
type Principal struct {
	Anonymous bool
	UserID    string
	UserName  string
	// Scoped principals (a project-scoped token) hold roles on ProjectID only; unscoped ones
	// (user name and password) hold whatever roles they are assigned.
	Scoped      bool
	ProjectID   string
	ScopedRoles []Role
	// Admin holds the admin role, which is cloud-wide under the default policies.
	Admin bool
	// Bounded principals came with a registry token: on repositories they may do at most
	// what Grants lists, whatever their roles.
	Bounded bool
	Grants  []Access
}

// Anonymous is the principal of a request without credentials.
var Anonymous = Principal{Anonymous: true}

// granted reports whether a bounded principal's token lets it take act on repo; unbounded
// principals are limited by their roles only.
func (pr Principal) granted(repo string, act Action) bool {
	if !pr.Bounded {
		return true
	}
	return RegistryClaims{Access: pr.Grants}.Allows("repository", repo, string(act))
}

// Directory answers the identity questions the policy asks; the embedded Identity and the
// external Keystone client both implement it.
type Directory interface {
	GetProject(ctx context.Context, id string) (Project, error)
	ProjectByName(ctx context.Context, name string) (Project, error)
	RolesOn(ctx context.Context, userID, projectID string) ([]Role, error)
}

// ContentKind says whose rules govern a manifest.
type ContentKind int

// Kinds of registry content.
const (
	// ProjectContent is not an image's: the owning project's roles govern it.
	ProjectContent ContentKind = iota
	// ImageContent is part of an image (its index, disk artifact, containerDisk).
	ImageContent
	// ReferrerContent refers to an image through subject (signatures, SBOMs, snapshots of
	// it that are no image themselves).
	ReferrerContent
)

// Content is what governs one manifest.
type Content struct {
	Kind  ContentKind
	Image ImageFacts // for ImageContent and ReferrerContent
}

// ContentFacts answers what the policy needs to know about registry content: the catalog's
// and the store's records. It is given to the policy when it is built.
type ContentFacts interface {
	// Manifest says what governs manifest d of repo: the image it is part of, else the
	// image its subject refers to, else its project.
	Manifest(ctx context.Context, repo string, d digest.Digest) (Content, error)
	// BlobHolders lists the manifests of repo that hold blob d.
	BlobHolders(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error)
	// RepositoryImages lists the images with content in repo (not killed or deleted).
	RepositoryImages(ctx context.Context, repo string) ([]ImageFacts, error)
}

// Policy is the one access decision both APIs call. It follows Glance's and Keystone's
// default policies: admin may do everything; a project's readers may read, its members (and
// managers) may also write; anonymous callers only read what is public, and only when
// allowed. Image content in a repository follows its image; everything else its project.
type Policy struct {
	Directory     Directory
	AnonymousPull bool
	// Content tells registry content apart; nil: all of it is its project's.
	Content ContentFacts
	// Protections rule who may touch which extra image properties; nil: everyone who may
	// change an image may change any of them (reserved names aside).
	Protections *PropertyProtections
	// Signatures tells projects' signing modes and manifests' signature verdicts; nil: no
	// project enforces signatures.
	Signatures SignatureFacts
}

// Decision is the answer to a read of one piece of content.
type Decision int

// Decisions. Hidden content answers exactly as missing content does; Refused content is
// known to the caller (they may see the image) but not readable (it is deactivated).
const (
	Hidden Decision = iota
	Refused
	Allowed
)

// RepositoryProject returns the project owning repo: its first path component, which names
// the project (case-insensitively) or is its id.
func (p *Policy) RepositoryProject(ctx context.Context, repo string) (Project, error) {
	first, _, _ := strings.Cut(repo, "/")
	proj, err := p.Directory.ProjectByName(ctx, first)
	if errors.Is(err, ErrNotFound) {
		proj, err = p.Directory.GetProject(ctx, first)
	}
	if err == nil && !proj.Enabled {
		return proj, ErrNotFound
	}
	return proj, err
}

// componentRE is the OCI grammar of one repository path component.
var componentRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)

// RepositoryNamespace is the first path component of every repository of proj: its name in
// lower case, or its id when the name is no valid path component.
func RepositoryNamespace(proj Project) string {
	if name := strings.ToLower(proj.Name); componentRE.MatchString(name) {
		return name
	}
	return proj.ID
}

// CanonicalRepository is where content pushed to repo belongs: repo itself, unless its first
// component is the id of a project whose namespace is its name, when it is the same path
// under the name. A project has one namespace, so a push by id and by name cannot make two
// repositories of the same content; the door refuses the id form rather than alias it (see
// registry.checkNamespace).
func (p *Policy) CanonicalRepository(ctx context.Context, repo string) (string, error) {
	first, rest, _ := strings.Cut(repo, "/")
	if _, err := p.Directory.ProjectByName(ctx, first); err == nil || !errors.Is(err, ErrNotFound) {
		return repo, ignoreNotFound(err)
	}
	proj, err := p.Directory.GetProject(ctx, first)
	if err != nil {
		return repo, ignoreNotFound(err)
	}
	return RepositoryNamespace(proj) + "/" + rest, nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// RolesOn returns the roles pr holds on project.
func (p *Policy) RolesOn(ctx context.Context, pr Principal, projectID string) ([]Role, error) {
	switch {
	case pr.Anonymous:
		return nil, nil
	case pr.Scoped && pr.ProjectID == projectID:
		return pr.ScopedRoles, nil
	case pr.Scoped:
		return nil, nil
	}
	return p.Directory.RolesOn(ctx, pr.UserID, projectID)
}

func hasRole(roles []Role, want ...Role) bool {
	return slices.ContainsFunc(roles, func(r Role) bool { return slices.Contains(want, r) })
}

// Role sets of the default policies: who reads and who writes a project's content.
var (
	readerRoles = []Role{RoleReader, RoleMember, RoleManager, RoleAdmin}
	writerRoles = []Role{RoleMember, RoleManager, RoleAdmin}
)

// projectRole reports whether pr holds one of roles on the project owning repo.
func (p *Policy) projectRole(ctx context.Context, pr Principal, repo string, roles []Role) (bool, error) {
	if pr.Anonymous {
		return false, nil
	}
	proj, err := p.RepositoryProject(ctx, repo)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	have, err := p.RolesOn(ctx, pr, proj.ID)
	if err != nil {
		return false, err
	}
	return hasRole(have, roles...), nil
}

// AllowRepository decides whether pr may act on repo at all: the question a registry token
// grant and the door ask before any content is looked at. Pulling is allowed to the
// project's readers and to whoever may see an image with content there; what each
// manifest and blob then shows is ReadManifest's and ReadBlob's answer.
func (p *Policy) AllowRepository(ctx context.Context, pr Principal, repo string, act Action) (bool, error) {
	if !pr.granted(repo, act) {
		return false, nil
	}
	pr.Bounded = false // within its grants, a token's principal is its user
	if pr.Admin {
		return true, nil
	}
	if act != ActionPull {
		return p.projectRole(ctx, pr, repo, writerRoles)
	}
	if ok, err := p.projectRole(ctx, pr, repo, readerRoles); ok || err != nil {
		return ok, err
	}
	return p.someImageVisible(ctx, pr, repo)
}

// ListRepository decides whether repo shows in pr's registry catalog: the pull question
// without a token's repository bounds (the catalog grant covers listing).
func (p *Policy) ListRepository(ctx context.Context, pr Principal, repo string) (bool, error) {
	pr.Bounded, pr.Grants = false, nil
	return p.AllowRepository(ctx, pr, repo, ActionPull)
}

// someImageVisible reports whether pr may see an image whose content is in repo.
func (p *Policy) someImageVisible(ctx context.Context, pr Principal, repo string) (bool, error) {
	if p.Content == nil {
		return false, nil
	}
	imgs, err := p.Content.RepositoryImages(ctx, repo)
	if err != nil {
		return false, err
	}
	for _, img := range imgs {
		if ok, err := p.AllowImage(ctx, pr, img, ImageGet, ""); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// TokenCovers reports whether pr's credentials reach act on repo at all: always for
// passwords and Keystone tokens, and for a registry token only when it grants it. A request
// that needs more than its token covers (a mount's source) is sent back for a wider token,
// as Distribution does, instead of being answered as if the content were missing.
func (p *Policy) TokenCovers(pr Principal, repo string, act Action) bool {
	return pr.granted(repo, act)
}

// AllowCatalog decides whether pr may list the registry's repositories at all (each one
// then by ListRepository): signed-in callers, and a registry token only when it grants
// registry:catalog:*.
func (p *Policy) AllowCatalog(pr Principal) bool {
	if pr.Anonymous {
		return false
	}
	return !pr.Bounded || (RegistryClaims{Access: pr.Grants}).Allows("registry", "catalog", "*")
}

// Grant returns the subset of actions pr may take on repo, for a registry token.
func (p *Policy) Grant(ctx context.Context, pr Principal, repo string, actions []string) ([]string, error) {
	granted := []string{}
	for _, a := range actions {
		acts := []Action{Action(a)}
		if a == "*" {
			acts = []Action{ActionPull, ActionPush, ActionDelete}
		}
		for _, act := range acts {
			if act != ActionPull && act != ActionPush && act != ActionDelete {
				continue
			}
			ok, err := p.AllowRepository(ctx, pr, repo, act)
			if err != nil {
				return nil, err
			}
			if ok && !slices.Contains(granted, string(act)) {
				granted = append(granted, string(act))
			}
		}
	}
	return granted, nil
}

// ReadManifest decides a read of manifest d of repo (by digest or through a tag, as a
// referrer or as a mount source's holder): image content follows its image (download:
// deactivated images are for admins), content referring to an image follows that image
// (get), anything else the project's readers.
func (p *Policy) ReadManifest(ctx context.Context, pr Principal, repo string, d digest.Digest) (Decision, error) {
	dec, _, err := p.readManifest(ctx, pr, repo, d)
	return dec, err
}

// readManifest is ReadManifest, also returning what governs the manifest (nothing for
// admins, who read everything).
func (p *Policy) readManifest(ctx context.Context, pr Principal, repo string, d digest.Digest) (Decision, *Content, error) {
	if !pr.granted(repo, ActionPull) {
		return Hidden, nil, nil
	}
	pr.Bounded = false
	if pr.Admin {
		return Allowed, nil, nil
	}
	c := Content{Kind: ProjectContent}
	if p.Content != nil {
		var err error
		if c, err = p.Content.Manifest(ctx, repo, d); err != nil {
			return Hidden, nil, err
		}
	}
	var dec Decision
	var err error
	switch c.Kind {
	case ImageContent:
		dec, err = p.imageDecision(ctx, pr, c.Image, ImageDownload)
	case ReferrerContent:
		dec, err = p.imageDecision(ctx, pr, c.Image, ImageGet)
	default:
		dec, err = p.projectDecision(ctx, pr, repo)
	}
	return dec, &c, err
}

// imageDecision: allowed when the policy allows act on img; refused when the caller may at
// least see the image; otherwise hidden.
func (p *Policy) imageDecision(ctx context.Context, pr Principal, img ImageFacts, act ImageAction) (Decision, error) {
	if img.Status == "deleted" || img.Status == "pending_delete" {
		return Hidden, nil
	}
	if ok, err := p.AllowImage(ctx, pr, img, act, ""); ok || err != nil {
		return Allowed, err
	}
	if act == ImageGet {
		return Hidden, nil
	}
	if ok, err := p.AllowImage(ctx, pr, img, ImageGet, ""); ok || err != nil {
		return Refused, err
	}
	return Hidden, nil
}

func (p *Policy) projectDecision(ctx context.Context, pr Principal, repo string) (Decision, error) {
	if ok, err := p.projectRole(ctx, pr, repo, readerRoles); !ok || err != nil {
		return Hidden, err
	}
	return Allowed, nil
}

// ReadBlob decides a read of blob d of repo, and whether it may be the source of a mount: a
// blob held by manifests is readable through a readable one of them (the best decision of
// its holders); a blob no manifest holds is its project's.
func (p *Policy) ReadBlob(ctx context.Context, pr Principal, repo string, d digest.Digest) (Decision, error) {
	if !pr.granted(repo, ActionPull) {
		return Hidden, nil
	}
	pr.Bounded = false
	if pr.Admin {
		return Allowed, nil
	}
	var holders []digest.Digest
	if p.Content != nil {
		var err error
		if holders, err = p.Content.BlobHolders(ctx, repo, d); err != nil {
			return Hidden, err
		}
	}
	if len(holders) == 0 {
		return p.projectDecision(ctx, pr, repo)
	}
	best := Hidden
	for _, h := range holders {
		dec, err := p.ReadManifest(ctx, pr, repo, h)
		if err != nil {
			return Hidden, err
		}
		if dec == Allowed {
			return Allowed, nil
		}
		best = max(best, dec)
	}
	return best, nil
}

// Explain says, for a caller AllowRepository refused, what act on repo would need, in words
// for the refusal: the rules it names are the ones AllowRepository applies.
func (p *Policy) Explain(ctx context.Context, pr Principal, repo string, act Action) string {
	if !pr.granted(repo, act) {
		return fmt.Sprintf("the registry token does not grant %s on %s", act, repo)
	}
	first, _, _ := strings.Cut(repo, "/")
	proj, err := p.RepositoryProject(ctx, first)
	if err != nil {
		return fmt.Sprintf("%s on %s needs a project named %q (the repository's first component), and there is none", act, repo, first)
	}
	if act == ActionPull {
		return fmt.Sprintf("%s on %s needs %s on project %s, or an image there you may see", act, repo, roleWords(readerRoles), proj.Name)
	}
	return fmt.Sprintf("%s on %s needs %s on project %s", act, repo, roleWords(writerRoles), proj.Name)
}

// roleWords names the least of roles and the others that also do.
func roleWords(roles []Role) string {
	s := "the " + string(roles[0]) + " role"
	if len(roles) > 1 {
		rest := make([]string, len(roles)-1)
		for i, r := range roles[1:] {
			rest[i] = string(r)
		}
		s += " (or " + strings.Join(rest, ", ") + ")"
	}
	return s
}

// AllowMetrics decides whether pr may read the service's metrics when they are protected:
// admins only (they name projects' refusals and the whole store's size). A registry token
// does not reach them.
func (p *Policy) AllowMetrics(pr Principal) bool {
	return pr.Admin && !pr.Bounded
}
