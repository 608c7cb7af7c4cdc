package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
)

// reference is a manifest reference from the path: a digest or a tag.
type reference struct {
	digest digest.Digest
	tag    string
}

func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := parseDigest(s)
		return reference{digest: d}, err
	}
	if !tagRE.MatchString(s) {
		return reference{}, E(CodeTagInvalid).WithMessage("invalid tag %q", s)
	}
	return reference{tag: s}, nil
}

// resolve finds the digest a reference names in repo.
func (reg *Registry) resolve(r *http.Request, repo string, ref reference) (digest.Digest, error) {
	if ref.digest != "" {
		return ref.digest, nil
	}
	return reg.store.ResolveTag(r.Context(), repo, ref.tag)
}

// getManifest serves a manifest by tag or digest (end-3), HEAD included, with the media type
// it was pushed with.
func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.ref)
	if err != nil {
		if ref.tag == "" && errors.As(err, new(*Error)) {
			return E(CodeManifestUnknown).WithMessage("%v", err)
		}
		return err
	}
	d, err := reg.resolve(r, rt.name, ref)
	if err != nil {
		return err
	}
	rec, content, err := reg.store.GetManifest(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		err = reg.readManifest(r.Context(), rt.name, d)
	} else {
		err = reg.pullManifest(w, r, rt.name, d)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", rec.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(content)))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(content)
	}
	return nil
}

// putManifest stores a manifest or index under a tag or its digest, with more tags from
// ?tag= (end-7a, end-7b).
func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.ref)
	if err != nil {
		return err
	}
	tags := r.URL.Query()["tag"]
	for _, t := range tags {
		if !tagRE.MatchString(t) {
			return E(CodeTagInvalid).WithMessage("invalid tag %q", t)
		}
	}
	body, release, err := reg.readManifestBody(r)
	if err != nil {
		return err
	}
	defer release()
	d := digest.SHA256.FromBytes(body)
	if ref.digest != "" {
		d = ref.digest.Algorithm().FromBytes(body)
		if d != ref.digest {
			return E(CodeDigestInvalid).WithMessage("manifest digest is %s, not %s", d, ref.digest)
		}
	} else {
		tags = append([]string{ref.tag}, tags...)
	}
	m, err := manifest.Parse(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	put := storage.ManifestPut{
		Digest: d, MediaType: m.MediaType, Content: body, ArtifactType: m.ArtifactType,
		Annotations: m.Annotations, Required: m.Blobs, Children: m.Manifests, Tags: tags,
		AllowMissing: reg.opt.SparseManifests,
	}
	if m.Subject != nil {
		put.Subject = m.Subject.Digest
	}
	if err := reg.checkPush(r, rt.name, append([]digest.Digest{}, m.Blobs...)); err != nil {
		return err
	}
	var record func(context.Context) error
	if reg.opt.Catalog != nil {
		record, err = reg.opt.Catalog.PushManifest(r.Context(), principal(r.Context()), rt.name, d, tags, m, body)
		if err != nil {
			return fmt.Errorf("check manifest %s of %s: %w", d, rt.name, err)
		}
	}
	if err := reg.store.PutManifest(r.Context(), rt.name, put); err != nil {
		return err
	}
	if record != nil {
		if err := record(r.Context()); err != nil {
			return fmt.Errorf("record image of %s: %w", d, err)
		}
	}
	if reg.opt.Catalog != nil {
		if err := reg.opt.Catalog.ContentChanged(r.Context(), rt.name, tags, put.Subject); err != nil {
			return fmt.Errorf("signatures of %s: %w", d, err)
		}
	}
	reg.event(r, "manifest pushed", "repository", rt.name, "digest", d.String(), "media_type", m.MediaType,
		"tags", tags, "size", len(body))
	h := w.Header()
	h.Set("Location", reg.location("/v2/"+rt.name+"/manifests/"+d.String()))
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		h.Set("OCI-Subject", m.Subject.Digest.String())
	}
	if ref.digest != "" {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// readManifestBody reads a manifest body within the server's budget of manifest bytes in
// memory: it waits up to ManifestWait for its share (then TOOMANYREQUESTS) and reads into a
// buffer sized from Content-Length. The caller calls release once done with the bytes.
func (reg *Registry) readManifestBody(r *http.Request) ([]byte, func(), error) {
	max := reg.opt.MaxManifestSize
	if r.ContentLength > max {
		return nil, nil, tooLarge(max)
	}
	// A body is held twice: as received and parsed (strings decoded from its JSON). An
	// unknown length may take up to max, in a buffer that grows by doubling.
	charge := 4 * max
	if r.ContentLength >= 0 {
		charge = 2 * r.ContentLength
	}
	ctx, cancel := context.WithTimeout(r.Context(), reg.opt.ManifestWait)
	taken, err := reg.manifestBudget.acquire(ctx, charge)
	cancel()
	if err != nil {
		if r.Context().Err() != nil {
			return nil, nil, r.Context().Err()
		}
		return nil, nil, E(CodeTooManyRequests).WithHeader("Retry-After", "1").
			WithMessage("too many manifest bytes being received; retry later")
	}
	release := func() { reg.manifestBudget.release(taken) }
	body, err := readLimited(r.Body, r.ContentLength, max)
	if err != nil {
		release()
		return nil, nil, err
	}
	return body, release, nil
}

// readLimited reads a whole body of at most max bytes, of length n if known (n >= 0); more
// is SIZE_INVALID with 413.
func readLimited(body io.Reader, n, max int64) ([]byte, error) {
	if n >= 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, E(CodeManifestInvalid).WithMessage("reading body: %v", err)
		}
		return buf, nil
	}
	var buf bytes.Buffer
	got, err := buf.ReadFrom(io.LimitReader(body, max+1))
	if err != nil {
		return nil, E(CodeManifestInvalid).WithMessage("reading body: %v", err)
	}
	if got > max {
		return nil, tooLarge(max)
	}
	return buf.Bytes(), nil
}

func tooLarge(max int64) error {
	return E(CodeSizeInvalid).WithStatus(http.StatusRequestEntityTooLarge).
		WithMessage("manifest larger than %d bytes", max)
}

// deleteManifest removes a manifest by digest, or only a tag by tag (end-9); it is gone at
// once.
func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.ref)
	if err != nil {
		return err
	}
	var tags []string
	var subject digest.Digest
	if ref.digest != "" {
		// What the manifest was tagged as and signs, for the verdicts that change with it.
		if rec, _, err := reg.store.GetManifest(r.Context(), rt.name, ref.digest); err == nil {
			subject = rec.Subject
			if tags, err = reg.store.ManifestTags(r.Context(), rt.name, ref.digest); err != nil {
				return err
			}
		}
		err = reg.deleteManifestByDigest(r, rt.name, ref.digest)
	} else {
		tags = []string{ref.tag}
		err = reg.store.DeleteTag(r.Context(), rt.name, ref.tag)
	}
	if err != nil {
		return err
	}
	if reg.opt.Catalog != nil {
		if err := reg.opt.Catalog.ContentChanged(r.Context(), rt.name, tags, subject); err != nil {
			return fmt.Errorf("signatures after deleting %s: %w", rt.ref, err)
		}
	}
	reg.event(r, "manifest deleted", "repository", rt.name, "reference", rt.ref)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteManifestByDigest deletes an image's manifest through the catalog (the image goes
// with it), any other manifest directly.
func (reg *Registry) deleteManifestByDigest(r *http.Request, repo string, d digest.Digest) error {
	if reg.opt.Catalog != nil {
		handled, err := reg.opt.Catalog.DeleteManifest(r.Context(), principal(r.Context()), repo, d)
		if handled || err != nil {
			return err
		}
	}
	return reg.store.DeleteManifest(r.Context(), repo, d)
}
