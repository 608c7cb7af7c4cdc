package registry

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// postUpload starts an upload (end-4a), takes a whole blob in one request (end-4b), starts
// one hashed with a named algorithm (end-4c), or mounts a blob from another repository
// (end-11).
func (reg *Registry) postUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	ctx := r.Context()
	if err := reg.checkPush(r, rt.name, nil); err != nil {
		return err
	}
	if m := q.Get("mount"); m != "" {
		if d, err := storage.ParseDigest(m); err == nil && reg.mount(r, rt.name, q.Get("from"), d) {
			return reg.blobCreated(w, rt.name, d)
		}
		// Not mountable: the spec says to start an ordinary upload instead.
	}
	if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		u, err := reg.store.StartUpload(ctx, rt.name, d.Algorithm())
		if err != nil {
			return err
		}
		if _, err := reg.store.CommitUpload(ctx, rt.name, u.ID, d, 0, r.Body, -1); err != nil {
			reg.store.CancelUpload(ctx, rt.name, u.ID)
			return err
		}
		return reg.blobCreated(w, rt.name, d)
	}
	alg := digest.SHA256
	if a := q.Get("digest-algorithm"); a != "" {
		alg = digest.Algorithm(a)
		if !storage.SupportedAlgorithm(alg) {
			return E(CodeDigestInvalid).WithMessage("unsupported digest algorithm %q", a)
		}
	}
	u, err := reg.store.StartUpload(ctx, rt.name, alg)
	if err != nil {
		return err
	}
	return reg.uploadStatus(w, u, http.StatusAccepted)
}

// mount links d into repo from the repository from, or, without from, from any repository
// that holds it. It reports whether the blob is now in repo.
func (reg *Registry) mount(r *http.Request, repo, from string, d digest.Digest) bool {
	candidates := []string{from}
	if from == "" {
		repos, err := reg.store.BlobRepositories(r.Context(), d)
		if err != nil {
			return false
		}
		candidates = repos
	}
	for _, src := range candidates {
		// A blob the caller may not read is, to them, not there: the source passes exactly
		// the check a GET of the blob from it would (the signing rule included, so a mount
		// cannot carry an unverified disk out of an enforcing project), within the token's
		// grants.
		if !validName(src) {
			continue
		}
		if reg.mountSourceBlob(r.Context(), src, d) != nil {
			continue
		}
		if src == repo {
			if _, err := reg.store.StatBlob(r.Context(), repo, d); err == nil {
				return true
			}
			continue
		}
		if reg.store.MountBlob(r.Context(), src, repo, d) == nil {
			return true
		}
	}
	return false
}

// blobCreated answers a finished upload or mount: 201 with the blob's location.
func (reg *Registry) blobCreated(w http.ResponseWriter, repo string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", reg.location("/v2/"+repo+"/blobs/"+d.String()))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// uploadStatus writes where a session stands: its location and the range received.
func (reg *Registry) uploadStatus(w http.ResponseWriter, u storage.Upload, status int) error {
	h := w.Header()
	h.Set("Location", reg.location("/v2/"+u.Repo+"/blobs/uploads/"+u.ID))
	h.Set("Range", uploadRange(u.Offset))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// uploadRange is the spec's Range value for offset bytes received (no "bytes=" prefix).
func uploadRange(offset int64) string {
	if offset == 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(offset-1, 10)
}

// uploadID checks the session id from the path: ids are UUIDs, never paths.
func uploadID(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s {
		return "", E(CodeBlobUploadUnknown)
	}
	return s, nil
}

// getUpload reports a session's progress (end-13).
func (reg *Registry) getUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := uploadID(rt.ref)
	if err != nil {
		return err
	}
	u, err := reg.store.GetUpload(r.Context(), rt.name, id)
	if err != nil {
		return err
	}
	return reg.uploadStatus(w, u, http.StatusNoContent)
}

var contentRangeRE = regexp.MustCompile(`^(?:bytes[= ])?([0-9]+)-([0-9]+)(?:/[0-9*]+)?$`)

// chunkStart reads Content-Range (inclusive start-end): where the client says the chunk
// begins, or -1 for a streamed chunk without one.
func chunkStart(r *http.Request) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, nil
	}
	m := contentRangeRE.FindStringSubmatch(cr)
	if m == nil {
		return 0, E(CodeRangeInvalid).WithMessage("malformed Content-Range %q", cr)
	}
	start, err1 := strconv.ParseInt(m[1], 10, 64)
	end, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || end < start {
		return 0, E(CodeRangeInvalid).WithMessage("malformed Content-Range %q", cr)
	}
	return start, nil
}

// outOfOrder answers a chunk that does not continue the session: 416 with where it stands.
func (reg *Registry) outOfOrder(r *http.Request, rt route, id string) error {
	e := E(CodeRangeInvalid).WithMessage("chunk does not start where the upload ends")
	if u, err := reg.store.GetUpload(r.Context(), rt.name, id); err == nil {
		e.WithHeader("Range", uploadRange(u.Offset)).
			WithHeader("Location", reg.location("/v2/"+u.Repo+"/blobs/uploads/"+u.ID))
	}
	return e
}

// patchUpload appends a chunk, ordered by Content-Range or streamed (end-5).
func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := uploadID(rt.ref)
	if err != nil {
		return err
	}
	start, err := chunkStart(r)
	if err != nil {
		return err
	}
	u, err := reg.store.AppendUpload(r.Context(), rt.name, id, start, r.Body, -1)
	if errors.Is(err, storage.ErrRangeInvalid) {
		return reg.outOfOrder(r, rt, id)
	}
	if err != nil {
		return uploadFailed(err)
	}
	return reg.uploadStatus(w, u, http.StatusAccepted)
}

// putUpload closes a session with the whole blob's digest, taking a last chunk if sent
// (end-6).
func (reg *Registry) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := uploadID(rt.ref)
	if err != nil {
		return err
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return E(CodeDigestInvalid).WithMessage("digest parameter is required")
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	start, err := chunkStart(r)
	if err != nil {
		return err
	}
	_, err = reg.store.CommitUpload(r.Context(), rt.name, id, d, start, r.Body, -1)
	if errors.Is(err, storage.ErrRangeInvalid) {
		return reg.outOfOrder(r, rt, id)
	}
	if err != nil {
		return uploadFailed(err)
	}
	return reg.blobCreated(w, rt.name, d)
}

// uploadFailed turns a failed write into the spec's error: the session is as it was.
func uploadFailed(err error) error {
	if errors.Is(err, storage.ErrIncomplete) {
		return E(CodeBlobUploadInvalid).WithMessage("upload body incomplete; the session is unchanged")
	}
	return err
}

// deleteUpload cancels a session (end-14).
func (reg *Registry) deleteUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := uploadID(rt.ref)
	if err != nil {
		return err
	}
	if err := reg.store.CancelUpload(r.Context(), rt.name, id); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkPush asks the catalog whether the repository's project may store more.
func (reg *Registry) checkPush(r *http.Request, repo string, blobs []digest.Digest) error {
	if reg.opt.Catalog == nil {
		return nil
	}
	if err := reg.opt.Catalog.CheckPush(r.Context(), principal(r.Context()), repo, blobs); err != nil {
		return fmt.Errorf("quota of %s: %w", repo, err)
	}
	return nil
}
