package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Code is an error code of the distribution spec (closed set).
type Code string

// The spec's codes (code-1 … code-14) plus the legacy ones clients still know.
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	CodeTagInvalid          Code = "TAG_INVALID"
	CodeRangeInvalid        Code = "RANGE_INVALID"
	CodePaginationInvalid   Code = "PAGINATION_NUMBER_INVALID"
	CodeUnknown             Code = "UNKNOWN"
	// CodeUnavailable is Distribution's code for a backend that does not answer (503);
	// the spec has none, and clients retry on the status.
	CodeUnavailable Code = "UNAVAILABLE"
)

// codeInfo gives each code its default status and message.
var codeInfo = map[Code]struct {
	status  int
	message string
}{
	CodeBlobUnknown:         {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:   {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:   {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:       {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown: {http.StatusBadRequest, "manifest references a blob unknown to the registry"},
	CodeManifestInvalid:     {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:     {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:         {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:         {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:         {http.StatusBadRequest, "provided length did not match content length"},
	CodeUnauthorized:        {http.StatusUnauthorized, "authentication required"},
	CodeDenied:              {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:         {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:     {http.StatusTooManyRequests, "too many requests"},
	CodeTagInvalid:          {http.StatusBadRequest, "manifest tag did not match URI"},
	CodeRangeInvalid:        {http.StatusRequestedRangeNotSatisfiable, "invalid content range"},
	CodePaginationInvalid:   {http.StatusBadRequest, "invalid number of results requested"},
	CodeUnknown:             {http.StatusInternalServerError, "unknown error"},
	CodeUnavailable:         {http.StatusServiceUnavailable, "service unavailable"},
}

// Error is a protocol error: a code, an optional message and detail, and the status to send.
type Error struct {
	Code    Code
	Message string
	Detail  any
	Status  int
	// Header holds extra response headers (e.g. Range on a 416).
	Header http.Header
}

// E builds the error for code with its default status and message.
func E(code Code) *Error {
	info := codeInfo[code]
	return &Error{Code: code, Message: info.message, Status: info.status}
}

// WithMessage replaces the message.
func (e *Error) WithMessage(format string, a ...any) *Error {
	e.Message = fmt.Sprintf(format, a...)
	return e
}

// WithDetail attaches a detail object.
func (e *Error) WithDetail(d any) *Error { e.Detail = d; return e }

// WithStatus overrides the status the spec allows for this case.
func (e *Error) WithStatus(s int) *Error { e.Status = s; return e }

// WithHeader adds a response header.
func (e *Error) WithHeader(k, v string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(k, v)
	return e
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// asError maps domain errors to protocol errors. This is the only place it happens.
func asError(err error) *Error {
	var e *Error
	var missing *storage.MissingBlobsError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &missing):
		return E(CodeManifestBlobUnknown).WithDetail(missingDetail(missing.Digests))
	case errors.Is(err, storage.ErrBlobUnknown):
		return E(CodeBlobUnknown)
	case errors.Is(err, storage.ErrManifestUnknown):
		return E(CodeManifestUnknown)
	case errors.Is(err, storage.ErrUploadUnknown):
		return E(CodeBlobUploadUnknown)
	case errors.Is(err, storage.ErrNameUnknown):
		return E(CodeNameUnknown)
	case errors.Is(err, storage.ErrDigestMismatch):
		return E(CodeDigestInvalid)
	case errors.Is(err, storage.ErrUnsupportedAlg):
		return E(CodeDigestInvalid).WithMessage("unsupported digest algorithm")
	case errors.Is(err, storage.ErrTooLarge):
		return E(CodeSizeInvalid).WithStatus(http.StatusRequestEntityTooLarge).WithMessage("content too large")
	case errors.Is(err, storage.ErrTooManyUploads):
		// 429, not DENIED: the caller may push here; it has too many sessions open right now,
		// and finishing, cancelling or letting them expire makes room.
		return E(CodeTooManyRequests).WithMessage("%v; finish or cancel some, or wait for idle ones to expire", err)
	case errors.Is(err, meta.ErrUnavailable):
		return E(CodeUnavailable).WithMessage("the metadata store does not answer; nothing was changed; retry later")
	case errors.Is(err, storage.ErrStoreUnavailable):
		return E(CodeUnavailable).WithMessage("the blob store does not answer; nothing was stored; retry later")
	case errors.Is(err, storage.ErrCollected):
		return E(CodeBlobUploadInvalid).WithMessage("%v", storage.ErrCollected)
	case errors.Is(err, context.Canceled):
		return E(CodeBlobUploadInvalid).WithMessage("request cancelled by the client")
	case errors.Is(err, manifest.ErrInvalid):
		return E(CodeManifestInvalid).WithMessage("%s", err.Error())
	}
	if kind, msg := catalog.KindOf(err); kind != 0 {
		return catalogError(kind, msg)
	}
	return E(CodeUnknown)
}

// Bounds on what an error body echoes of the request, so a huge bad input does not make a
// huge answer.
const (
	maxErrorMessage  = 1024
	maxDetailDigests = 100
)

// missingDetail lists the first missing digests and how many there are.
func missingDetail[T any](ds []T) map[string]any {
	if len(ds) <= maxDetailDigests {
		return map[string]any{"digests": ds}
	}
	return map[string]any{"digests": ds[:maxDetailDigests], "count": len(ds)}
}

// truncate cuts s to at most n bytes on a character boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = strings.ToValidUTF8(s[:n], "")
	return s + "… (truncated)"
}

// catalogError maps a refusal of the image catalog, which the registry meets on manifests
// (reads, pushes, deletes of images' content), to the code for it; msg, when set, says why.
func catalogError(kind catalog.Kind, msg string) *Error {
	var e *Error
	switch kind {
	case catalog.BadData, catalog.BadRequest, catalog.TooMany:
		e = E(CodeManifestInvalid) // a push refused for its content
	case catalog.Forbidden, catalog.OverLimit:
		e = E(CodeDenied) // a quota is an authorization refusal (Harbor, Quay, Keppel)
	case catalog.Conflict, catalog.BadState:
		e = E(CodeDenied).WithStatus(http.StatusConflict)
	default: // NotFound, Gone, NoData: the image is not there for the caller
		e = E(CodeManifestUnknown)
	}
	if msg != "" {
		e.Message = msg
	}
	return e
}

type wireError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError writes err as the spec's JSON error body (no body on HEAD) and logs it: server
// faults at ERROR, refusals at INFO with the reason the body gives.
func (reg *Registry) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	reg.logError(r, e, err)
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	body, _ := json.Marshal(map[string][]wireError{"errors": {{e.Code, truncate(e.Message, maxErrorMessage), e.Detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	w.Write(body)
}

// logError logs what writeError answers. Challenges (401) are logged where they are decided.
func (reg *Registry) logError(r *http.Request, e *Error, err error) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "request_id", reqlog.ID(r.Context())}
	switch {
	case e.Code == CodeUnknown:
		reg.log().ErrorContext(r.Context(), "registry request failed", append(attrs, "err", err)...)
	case e.Code == CodeUnauthorized:
		reg.opt.Metrics.Refused("registry", string(e.Code)) // logged where the challenge is decided
	case e.Code != CodeUnauthorized:
		reg.opt.Metrics.Refused("registry", string(e.Code))
		reg.log().InfoContext(r.Context(), "registry refused", append(attrs, "status", e.Status,
			"code", string(e.Code), "reason", truncate(e.Message, maxErrorMessage))...)
	}
}
