package registry

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/manifest"
)

// Catalog is what the registry asks the image catalog about content that belongs to images:
// who may read it (visibility, members, deactivation), and what a manifest delete means.
// Content that is not an image's is the repository policy's alone.
type Catalog interface {
	// ReadManifest decides whether pr may read manifest d of repo. known is false when d
	// stands for no image.
	ReadManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (known, allowed bool, err error)
	// DeleteManifest deletes the image that manifest d of repo stands for, as the Image API
	// would; handled is false when d stands for no image.
	DeleteManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (handled bool, err error)
	// PushManifest checks a manifest about to be stored: a VM disk must be safe (an error
	// refuses the push). It returns what to do once the manifest is stored (record the
	// image), or nil for content that is no VM disk.
	PushManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, m *manifest.Manifest, content []byte) (func(context.Context) error, error)
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

// canReadManifest applies the catalog's image rules to a manifest read.
func (reg *Registry) canReadManifest(r *http.Request, repo string, d digest.Digest) error {
	if reg.opt.Catalog == nil || reg.opt.Access == nil {
		return nil
	}
	known, ok, err := reg.opt.Catalog.ReadManifest(r.Context(), principal(r.Context()), repo, d)
	if err != nil {
		return err
	}
	if known && !ok {
		return E(CodeDenied).WithMessage("the image is not available to you")
	}
	return nil
}

// canReadBlob: a blob held by image manifests is readable when one of them is; a blob held
// by any other manifest, or by none, is the repository policy's.
func (reg *Registry) canReadBlob(r *http.Request, repo string, d digest.Digest) error {
	if reg.opt.Catalog == nil || reg.opt.Access == nil {
		return nil
	}
	holders, err := reg.store.Holders(r.Context(), repo, d)
	if err != nil || len(holders) == 0 {
		return err
	}
	for _, h := range holders {
		known, ok, err := reg.opt.Catalog.ReadManifest(r.Context(), principal(r.Context()), repo, h)
		if err != nil {
			return err
		}
		if !known || ok {
			return nil
		}
	}
	return E(CodeDenied).WithMessage("the image is not available to you")
}
