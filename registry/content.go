package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
)

// Catalog is what the registry tells the image catalog about content that belongs to images:
// what a manifest delete means and what a pushed VM disk becomes. Who may read what is the
// policy's question (auth.Policy), never the catalog's.
type Catalog interface {
	// DeleteManifest deletes the image that manifest d of repo stands for, as the Image API
	// would; handled is false when d stands for no image.
	DeleteManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (handled bool, err error)
	// PushManifest checks a manifest about to be stored under tags (none when pushed by
	// digest): a VM disk must be safe (an error refuses the push). It returns what to do once
	// the manifest is stored (record the image), or nil for content that is no VM disk.
	PushManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, tags []string, m *manifest.Manifest, content []byte) (func(context.Context) error, error)
	// CheckPush refuses a push into repo that its project's storage limit
	// (image_size_total) does not allow: blobs nil when an upload starts, else the blobs a
	// manifest about to be stored holds. The error's kind is OverLimit (DENIED).
	CheckPush(ctx context.Context, pr auth.Principal, repo string, blobs []digest.Digest) error
	// ContentChanged is told of a manifest stored, deleted or untagged in repo with the tags
	// it had or got and its subject, so signatures' verdicts change at once.
	ContentChanged(ctx context.Context, repo string, tags []string, subject digest.Digest) error
}

// principal is the caller recorded by authorize; with authentication off (--auth none)
// everyone may do everything, as an admin.
func principal(ctx context.Context) auth.Principal {
	a, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{Admin: true}
	}
	return a.Principal
}

// errImageRefused answers a read of an image the caller may see but not pull (deactivated).
func errImageRefused() error {
	return E(CodeDenied).WithMessage("the image is not available to you")
}

// readManifest asks the policy whether the caller may read manifest d of repo; hidden
// content answers exactly as missing content does.
func (reg *Registry) readManifest(ctx context.Context, repo string, d digest.Digest) error {
	if reg.opt.Access == nil {
		return nil
	}
	dec, err := reg.opt.Access.Policy.ReadManifest(ctx, principal(ctx), repo, d)
	return decisionError(dec, err, fmt.Errorf("manifest %s: %w", d, storage.ErrManifestUnknown))
}

// pullManifest asks the policy whether the caller may GET manifest d of repo: the read
// decision and the signing rule (refused with DENIED and the reason, or a Warning header).
func (reg *Registry) pullManifest(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	if reg.opt.Access == nil {
		return nil
	}
	pull, err := reg.opt.Access.Policy.PullManifest(r.Context(), principal(r.Context()), repo, d)
	return reg.pullError(w, pull, err, fmt.Errorf("manifest %s: %w", d, storage.ErrManifestUnknown))
}

// pullBlob is pullManifest for a blob GET.
func (reg *Registry) pullBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	if reg.opt.Access == nil {
		return nil
	}
	pull, err := reg.opt.Access.Policy.PullBlob(r.Context(), principal(r.Context()), repo, d)
	return reg.pullError(w, pull, err, fmt.Errorf("blob %s: %w", d, storage.ErrBlobUnknown))
}

func (reg *Registry) pullError(w http.ResponseWriter, pull auth.Pull, err, missing error) error {
	if err == nil && pull.Denied != "" {
		return E(CodeDenied).WithMessage("%s", pull.Denied)
	}
	if err == nil && pull.Warning != "" {
		w.Header().Set("Warning", warning(pull.Warning))
		reg.opt.Metrics.SignatureWarning("registry")
	}
	return decisionError(pull.Decision, err, missing)
}

// mountSourceBlob asks whether the caller may take blob d of repo as a mount source: what
// a GET of it would answer, a signing refusal included.
func (reg *Registry) mountSourceBlob(ctx context.Context, repo string, d digest.Digest) error {
	if reg.opt.Access == nil {
		return nil
	}
	pull, err := reg.opt.Access.Policy.PullBlob(ctx, principal(ctx), repo, d)
	if err == nil && pull.Denied != "" {
		return E(CodeDenied).WithMessage("%s", pull.Denied)
	}
	return decisionError(pull.Decision, err, fmt.Errorf("blob %s: %w", d, storage.ErrBlobUnknown))
}

// warning is a Warning header value (RFC 9111 §5.5): code 299, agent "-", quoted text.
func warning(text string) string {
	return `299 - "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(text) + `"`
}

// readBlob asks the policy whether the caller may read blob d of repo (as a GET, or as the
// source of a mount).
func (reg *Registry) readBlob(ctx context.Context, repo string, d digest.Digest) error {
	if reg.opt.Access == nil {
		return nil
	}
	dec, err := reg.opt.Access.Policy.ReadBlob(ctx, principal(ctx), repo, d)
	return decisionError(dec, err, fmt.Errorf("blob %s: %w", d, storage.ErrBlobUnknown))
}

func decisionError(dec auth.Decision, err, missing error) error {
	switch {
	case err != nil:
		return err
	case dec == auth.Allowed:
		return nil
	case dec == auth.Refused:
		return errImageRefused()
	}
	return missing
}

// visible reports whether the caller may know of manifest d (allowed, or refused as a
// deactivated image it can see): what tag lists and referrers show.
func (reg *Registry) visible(r *http.Request, repo string, d digest.Digest) (bool, error) {
	if reg.opt.Access == nil {
		return true, nil
	}
	dec, err := reg.opt.Access.Policy.ReadManifest(r.Context(), principal(r.Context()), repo, d)
	return dec != auth.Hidden, err
}
