package registry

import (
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// parseDigest reads a digest from the request, as the spec's DIGEST_INVALID when it is not
// one the server can store.
func parseDigest(s string) (digest.Digest, error) {
	d, err := storage.ParseDigest(s)
	if err != nil {
		return "", E(CodeDigestInvalid).WithMessage("invalid digest %q: %v", s, err)
	}
	return d, nil
}

// getBlob serves a blob (end-2), HEAD included, with Range support. HEAD is answered from
// the blob's record alone. A file-backed blob goes out through ServeContent, so the
// kernel's sendfile does the copying; a blob in a store that hands out presigned URLs may
// be answered with a redirect to it (a whole-blob GET only, after authorisation).
func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	size, err := reg.store.StatBlob(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		if err = reg.readBlob(r.Context(), rt.name, d); err == nil {
			// A push asking whether to upload: hold the blob from GC until its manifest comes.
			err = reg.store.LeaseBlob(r.Context(), rt.name, d)
		}
	} else {
		err = reg.pullBlob(w, r, rt.name, d) // the signing rule too, before any redirect
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if r.Header.Get("Range") == "" {
		url, ok, err := reg.store.BlobRedirect(r.Context(), d)
		if err != nil {
			return err
		}
		if ok {
			h.Del("Cache-Control") // the URL expires
			http.Redirect(w, r, url, http.StatusTemporaryRedirect)
			return nil
		}
	}
	f, _, err := reg.store.OpenBlob(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, isFile := f.(*os.File); !isFile && wholeUnconditional(r) {
		// A stream from a remote store copies itself: socket to socket where it can
		// (ServeContent would pull it through a 32 KiB buffer).
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, f); err != nil { // f's WriteTo
			reg.log().Warn("blob GET ended early", "digest", d, "err", err)
		}
		return nil
	}
	http.ServeContent(w, r, "", zeroTime, f)
	return nil
}

// wholeUnconditional reports whether r asks for the whole blob with no condition (what
// ServeContent's Range and If-* handling would not change).
func wholeUnconditional(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return true
}

// deleteBlob unlinks a blob from the repository (end-10); it is gone at once.
func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	if err := reg.store.DeleteBlob(r.Context(), rt.name, d); err != nil {
		return err
	}
	reg.event(r, "blob deleted", "repository", rt.name, "digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
