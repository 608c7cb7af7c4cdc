package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// SignatureFacts answers the signing rule's questions from the signing verdicts, which are
// made when signatures or policies change: a pull only reads them, it never verifies.
type SignatureFacts interface {
	// SigningMode returns a project's mode: off, warn or enforce.
	SigningMode(ctx context.Context, project string) (string, error)
	// ManifestSignature returns the signature status of a manifest that is no image's part
	// (or of an index holding it), or exempt when it is signature content itself.
	ManifestSignature(ctx context.Context, repo string, d digest.Digest) (status string, exempt bool, err error)
}

// Pull is the answer to a GET of content: the read decision, and the signing rule's.
type Pull struct {
	Decision Decision
	// Denied is why the signing policy refuses content the caller may otherwise read
	// (enforce); empty: not refused.
	Denied string
	// Warning is what a warn policy says of unverified content; empty: nothing.
	Warning string
}

// PullManifest decides a GET of manifest d of repo (by tag or digest): ReadManifest, then
// the signing rule of the project owning the content. Listing, HEAD, tags and referrers ask
// ReadManifest alone.
func (p *Policy) PullManifest(ctx context.Context, pr Principal, repo string, d digest.Digest) (Pull, error) {
	dec, c, err := p.readManifest(ctx, pr, repo, d)
	if err != nil || dec != Allowed || c == nil {
		return Pull{Decision: dec}, err
	}
	return p.signingRule(ctx, pr, repo, d, *c)
}

// PullBlob decides a GET of blob d of repo: allowed through a holder whose pull is allowed
// (the signing rule included), refused when every readable holder is refused by it.
func (p *Policy) PullBlob(ctx context.Context, pr Principal, repo string, d digest.Digest) (Pull, error) {
	dec, err := p.ReadBlob(ctx, pr, repo, d)
	if err != nil || dec != Allowed || pr.Admin || p.Signatures == nil || p.Content == nil {
		return Pull{Decision: dec}, err
	}
	holders, err := p.Content.BlobHolders(ctx, repo, d)
	if err != nil || len(holders) == 0 {
		return Pull{Decision: dec}, err
	}
	var refused *Pull
	for _, h := range holders {
		pull, err := p.PullManifest(ctx, pr, repo, h)
		if err != nil {
			return Pull{}, err
		}
		if pull.Decision == Allowed && pull.Denied == "" {
			return pull, nil
		}
		if pull.Denied != "" && refused == nil {
			refused = &pull
		}
	}
	if refused != nil {
		return *refused, nil
	}
	return Pull{Decision: dec}, nil
}

// signingRule: when the project owning content is in warn or enforce mode, content whose
// signature status is not verified is refused (enforce) or flagged (warn). Signature
// content itself and callers who may push there (cosign reads the manifest it signs) pass.
func (p *Policy) signingRule(ctx context.Context, pr Principal, repo string, d digest.Digest, c Content) (Pull, error) {
	allowed := Pull{Decision: Allowed}
	if p.Signatures == nil || c.Kind == ReferrerContent {
		return allowed, nil
	}
	project, status := c.Image.Owner, c.Image.Signature
	if c.Kind == ProjectContent {
		proj, err := p.RepositoryProject(ctx, repo)
		if errors.Is(err, ErrNotFound) {
			return allowed, nil
		}
		if err != nil {
			return Pull{}, err
		}
		project = proj.ID
	}
	mode, err := p.Signatures.SigningMode(ctx, project)
	if err != nil || (mode != "enforce" && mode != "warn") {
		return allowed, err
	}
	if c.Kind == ProjectContent {
		var exempt bool
		if status, exempt, err = p.Signatures.ManifestSignature(ctx, repo, d); err != nil || exempt {
			return allowed, err
		}
	}
	if status == "verified" {
		return allowed, nil
	}
	// The user's right to push, not the token's scope: cosign reads the manifest it is
	// about to sign with a pull-scoped token.
	user := pr
	user.Bounded, user.Grants = false, nil
	if ok, err := p.AllowRepository(ctx, user, repo, ActionPush); ok || err != nil {
		return allowed, err
	}
	if status == "" {
		status = "unsigned"
	}
	reason := fmt.Sprintf("%s@%s is %s: project %s requires a signature verified by a key it trusts", repo, d, status, project)
	if mode == "warn" {
		allowed.Warning = reason
		return allowed, nil
	}
	return Pull{Decision: Refused, Denied: reason}, nil
}

// AllowDownloadSigned decides the signing rule for an Image API download of img: the reason
// it is refused (enforce), a warning (warn), or neither.
func (p *Policy) AllowDownloadSigned(ctx context.Context, pr Principal, img ImageFacts) (Pull, error) {
	if pr.Admin || img.Repository == "" {
		return Pull{Decision: Allowed}, nil
	}
	return p.signingRule(ctx, pr, img.Repository, "", Content{Kind: ImageContent, Image: img})
}

// AllowSigningPolicy decides access to a project's signing policy: admins for any project;
// the project's manager and admin role holders change their own; its readers and members
// read it. ErrNotFound: no such project.
func (p *Policy) AllowSigningPolicy(ctx context.Context, pr Principal, project string, write bool) (bool, error) {
	if _, err := p.Directory.GetProject(ctx, project); err != nil {
		return false, err
	}
	if pr.Bounded || pr.Anonymous {
		return false, nil
	}
	if pr.Admin {
		return true, nil
	}
	roles := readerRoles
	if write {
		roles = []Role{RoleManager, RoleAdmin}
	}
	return p.hasRoleOn(ctx, pr, project, roles...)
}
