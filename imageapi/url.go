package imageapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// urlRequest is the optional body of POST /v2/images/{id}/actions/url.
type urlRequest struct {
	TTL *int64 `json:"ttl"`
}

// urlResponse is its answer.
type urlResponse struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

// signedURL is POST /v2/images/{id}/actions/url (an Xloud extension): for a caller who may
// download the image, a URL on the registry port that reads the image's disk without any
// other credential (GET, HEAD, Range; qemu's http driver) until it expires. Body, optional:
// {"ttl": seconds}, default 1 h, at most the server's maximum. The URL speaks for the caller
// and is checked against their access at every use.
func (a *API) signedURL(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if a.opt.Signer == nil || a.opt.RegistryURL == nil {
		return errorf(http.StatusNotImplemented, "Signed URLs are not enabled on this server.")
	}
	ttl, err := a.urlTTL(w, r)
	if err != nil {
		return err
	}
	img, f, size, err := a.cat.Open(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	f.Close()
	if img.Status != catalog.StatusActive {
		return errorf(http.StatusForbidden, "Image %s is %s: only an active image has a signed URL.", img.ID, img.Status)
	}
	if pr.UserID == "" {
		return errorf(http.StatusForbidden, "A signed URL speaks for a user: sign in with a user's token to ask for one.")
	}
	c := auth.URLClaims{Repo: img.Repository, Digest: img.DiskDigest, Image: img.ID, User: pr.UserID}
	if pr.Scoped {
		c.Project = pr.ProjectID
	}
	if img.DiskOffset > 0 {
		c.Offset, c.Length = img.DiskOffset, size
	}
	token, c, err := a.opt.Signer.Sign(r.Context(), c, ttl)
	if err != nil {
		return err
	}
	u := strings.TrimSuffix(a.opt.RegistryURL(r), "/") + "/signed/" + token
	return writeJSON(w, http.StatusOK, urlResponse{URL: u, ExpiresAt: c.ExpiresAt().Format(time.RFC3339)})
}

// urlTTL reads the optional body's ttl.
func (a *API) urlTTL(w http.ResponseWriter, r *http.Request) (time.Duration, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return 0, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return a.opt.Signer.DefaultTTL(), nil
	}
	var req urlRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, errorf(http.StatusBadRequest, "The body must be a JSON object with at most an integer ttl (seconds): %v", err)
	}
	if req.TTL == nil {
		return a.opt.Signer.DefaultTTL(), nil
	}
	max := a.opt.Signer.MaxURLTTL()
	if *req.TTL <= 0 || time.Duration(*req.TTL)*time.Second > max {
		return 0, errorf(http.StatusBadRequest, "ttl must be from 1 to %d seconds, not %d.", int64(max/time.Second), *req.TTL)
	}
	return time.Duration(*req.TTL) * time.Second, nil
}
