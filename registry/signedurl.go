package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/storage"
)

// SignedPrefix is where signed blob URLs are served on the registry port.
const SignedPrefix = "/signed/"

// URLResponse is the answer to a request for a signed URL (both APIs).
type URLResponse struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

// SignedURL is the URL clients fetch token at, under base (the registry's public URL).
func SignedURL(base, token string) string {
	return strings.TrimSuffix(base, "/") + SignedPrefix + token
}

// postBlobURL is POST /v2/<name>/blobs/<digest>/url (an extension of the distribution
// API): with pull access to the blob, a signed URL that reads it without credentials until
// it expires (?ttl=SECONDS, default 1 h, at most the server's maximum). The caller is the
// identity the URL speaks for, re-checked at every use.
func (reg *Registry) postBlobURL(w http.ResponseWriter, r *http.Request, rt route) error {
	if reg.opt.Signer == nil {
		return E(CodeUnsupported).WithMessage("signed URLs are not enabled on this server")
	}
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	ttl, err := reg.parseTTL(r.URL.Query().Get("ttl"))
	if err != nil {
		return err
	}
	if _, err := reg.store.StatBlob(r.Context(), rt.name, d); err != nil {
		return err
	}
	if err := reg.readBlob(r.Context(), rt.name, d); err != nil {
		return err
	}
	pr := principal(r.Context())
	if pr.UserID == "" {
		return E(CodeDenied).WithMessage("a signed URL speaks for a user: sign in to ask for one")
	}
	c := auth.URLClaims{Repo: rt.name, Digest: d.String(), User: pr.UserID}
	if pr.Scoped {
		c.Project = pr.ProjectID
	}
	token, c, err := reg.opt.Signer.Sign(r.Context(), c, ttl)
	if err != nil {
		return err
	}
	reg.event(r, "signed URL issued", "repository", rt.name, "digest", d.String(), "url_nonce", c.Nonce)
	return writeJSON(w, r, "application/json", URLResponse{URL: SignedURL(reg.baseURL(r), token), ExpiresAt: c.ExpiresAt().Format(time.RFC3339)})
}

// parseTTL reads a URL life in seconds ("" is the default).
func (reg *Registry) parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return reg.opt.Signer.DefaultTTL(), nil
	}
	max := reg.opt.Signer.MaxURLTTL()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || time.Duration(n)*time.Second > max {
		return 0, E(CodeUnsupported).WithStatus(http.StatusBadRequest).
			WithMessage("ttl must be a whole number of seconds from 1 to %d, not %q", int64(max/time.Second), s)
	}
	return time.Duration(n) * time.Second, nil
}

// SignedHandler serves GET and HEAD of signed URLs (/signed/<token>), with Range, exactly
// as a blob GET and with no other credential. At every use the signature, the expiry and
// the policy's read decision for the URL's caller as they stand now are checked; a refusal
// is 403 (bad or expired URL, access lost, image deactivated) or 404 (content gone), in the
// registry's error format.
func (reg *Registry) SignedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.URL.Path, SignedPrefix)
		// No log line may carry the credential: the path is logged as the URL's nonce.
		r.URL.Path = SignedPrefix + "(unverified)"
		if err := reg.serveSigned(w, r, token); err != nil {
			reg.writeError(w, r, err)
		}
	})
}

func (reg *Registry) serveSigned(w http.ResponseWriter, r *http.Request, token string) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return E(CodeUnsupported).WithMessage("a signed URL answers GET and HEAD only")
	}
	if reg.opt.Signer == nil {
		return E(CodeUnsupported).WithMessage("signed URLs are not enabled on this server")
	}
	c, err := reg.opt.Signer.Verify(r.Context(), token)
	if c.Nonce != "" {
		r.URL.Path = SignedPrefix + c.Nonce
		reqlog.SetURLNonce(r.Context(), c.Nonce)
		reqlog.SetCaller(r.Context(), c.User, c.Project)
	}
	switch {
	case errors.Is(err, auth.ErrURLInvalid), errors.Is(err, auth.ErrURLExpired):
		return E(CodeDenied).WithMessage("%v", err)
	case err != nil:
		return err
	}
	if err := reg.decideSigned(w, r, c); err != nil {
		return err
	}
	return reg.sendSigned(w, r, c)
}

// decideSigned asks the policy whether the URL's caller may read its blob now.
func (reg *Registry) decideSigned(w http.ResponseWriter, r *http.Request, c auth.URLClaims) error {
	if reg.opt.Access == nil {
		return nil
	}
	pull, _, err := reg.opt.Access.Policy.ReadSignedURL(r.Context(), c)
	dec := pull.Decision
	switch {
	case err != nil:
		return err
	case pull.Denied != "":
		return E(CodeDenied).WithMessage("%s", pull.Denied)
	case pull.Warning != "":
		w.Header().Set("Warning", warning(pull.Warning))
		reg.opt.Metrics.SignatureWarning("registry")
	case dec == auth.Refused:
		return E(CodeDenied).WithMessage("the image of this signed URL is not available (deactivated)")
	case dec == auth.Hidden:
		// Gone, or no longer readable by the caller: the URL is dead either way.
		return E(CodeDenied).WithMessage("the signed URL no longer grants access: its content is gone or its holder lost access")
	}
	return nil
}

// sendSigned writes the blob (or the section the claims name) as getBlob does.
func (reg *Registry) sendSigned(w http.ResponseWriter, r *http.Request, c auth.URLClaims) error {
	d := digest.Digest(c.Digest)
	f, size, err := reg.store.OpenBlob(r.Context(), c.Repo, d)
	if err != nil {
		return err
	}
	defer f.Close()
	var body io.ReadSeeker = f
	if c.Length > 0 {
		ra, ok := f.(io.ReaderAt)
		if !ok || c.Offset+c.Length > size {
			return fmt.Errorf("signed URL section %d+%d of blob %s (%d bytes): cannot be read in place", c.Offset, c.Length, d, size)
		}
		body, size = io.NewSectionReader(ra, c.Offset, c.Length), c.Length
		if file, ok := f.(*os.File); ok {
			body = storage.SectionFile(file, c.Offset, c.Length) // sendfile still
		}
	} else if file, ok := f.(*os.File); ok {
		// A VM's disk reads are thousands of small ranges: fewer system calls each.
		body = storage.SectionFile(file, 0, size)
	}
	label := c.Image
	if label == "" {
		label = c.Digest
	}
	reg.opt.Metrics.SignedURLUse(label)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Cache-Control", "private, no-store")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	http.ServeContent(reg.opt.Metrics.CountImageBytes(w, label), r, "", zeroTime, body)
	return nil
}
