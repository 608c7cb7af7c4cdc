package imageapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// apiError is an error with the HTTP status Glance gives it, and headers that go with it
// (Allow, Accept-Patch).
type apiError struct {
	status int
	msg    string
	header http.Header
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (e *apiError) withHeader(k, v string) *apiError {
	if e.header == nil {
		e.header = http.Header{}
	}
	e.header.Set(k, v)
	return e
}

var errUnauthenticated = errorf(http.StatusUnauthorized, "The request you have made requires authentication.")

// kindStatus gives each catalog refusal Glance's status code.
var kindStatus = map[catalog.Kind]int{
	catalog.NoData:     http.StatusNoContent,
	catalog.NotFound:   http.StatusNotFound,
	catalog.Forbidden:  http.StatusForbidden,
	catalog.Conflict:   http.StatusConflict,
	catalog.BadRequest: http.StatusBadRequest,
	catalog.TooMany:    http.StatusRequestEntityTooLarge,
	catalog.BadState:   http.StatusConflict, // Glance: 409 for uploads, imports and stages in the wrong state
	catalog.Gone:       http.StatusGone,
	catalog.BadData:    http.StatusUnsupportedMediaType,  // 2025.1 format mismatch or safety check
	catalog.OverLimit:  http.StatusRequestEntityTooLarge, // Glance's LimitExceeded; never with Retry-After
}

// statusTable maps the errors of other packages that reach the door, first match wins; they
// are answered with the status's default message.
var statusTable = []struct {
	err    error
	status int
}{
	{storage.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{storage.ErrIncomplete, http.StatusBadRequest},
	{storage.ErrStoreUnavailable, http.StatusServiceUnavailable}, // nothing was stored; retry later
	{meta.ErrUnavailable, http.StatusServiceUnavailable},         // the metadata store does not answer
	{auth.ErrUnauthorized, http.StatusUnauthorized},
	{auth.ErrTokenExpired, http.StatusUnauthorized},
	{auth.ErrTokenMalformed, http.StatusUnauthorized},
	{context.Canceled, http.StatusBadRequest}, // the client went away
}

// statusOf returns the status and the message an error is answered with; faults are 500
// with a generic message (and reported as such).
func statusOf(err error) (int, string, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.msg, false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", mbe.Limit), false
	}
	if kind, msg := catalog.KindOf(err); kind != 0 {
		return kindStatus[kind], msg, false
	}
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			if e.status == http.StatusUnauthorized {
				return e.status, errUnauthenticated.msg, false
			}
			return e.status, "", false
		}
	}
	return http.StatusInternalServerError, "The server has either erred or is incapable of performing the requested operation.", true
}

// defaultMessages are webob's explanations, for errors that carry no message of their own.
var defaultMessages = map[int]string{
	http.StatusBadRequest:            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
	http.StatusForbidden:             "Access was denied to this resource.",
	http.StatusNotFound:              "The resource could not be found.",
	http.StatusConflict:              "There was a conflict when trying to complete your request.",
	http.StatusGone:                  "This resource is no longer available.",
	http.StatusRequestEntityTooLarge: "The request is larger than the server is willing or able to process.",
	http.StatusUnsupportedMediaType:  "The request media type is not supported by this server.",
	http.StatusServiceUnavailable:    "The server is currently unavailable. Please try again at a later time.",
}

// titles where webob's differ from Go's.
var titles = map[int]string{
	http.StatusRequestedRangeNotSatisfiable: "Request Range Not Satisfiable",
}

// writeError answers err as Glance does (§1.10): the status its error maps to and a body
// negotiated on Accept — HTML for */* (every glanceclient call) and text/html, flat JSON for
// application/json, plain text otherwise. HEAD gets no body.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, fault := statusOf(err)
	a.logError(r, status, msg, fault, err)
	var ae *apiError
	if errors.As(err, &ae) {
		for k, v := range ae.header {
			w.Header()[k] = v
		}
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	if msg == "" && status == http.StatusNotFound && r.PathValue("id") != "" {
		msg = "No image found with ID " + r.PathValue("id")
	}
	if msg == "" {
		msg = defaultMessages[status]
	}
	msg = capitalize(msg)
	title := titles[status]
	if title == "" {
		title = http.StatusText(status)
	}
	code := strconv.Itoa(status) + " " + title
	var ctype, body string
	switch negotiate(r) {
	case "text/html":
		ctype = "text/html; charset=UTF-8"
		body = "<html>\n <head>\n  <title>" + code + "</title>\n </head>\n <body>\n  <h1>" + code + "</h1>\n  " +
			escapeHTML(msg) + "<br /><br />\n\n\n\n </body>\n</html>"
	case "application/json":
		ctype = "application/json"
		b, _ := json.Marshal(map[string]string{"message": msg + "<br /><br />\n\n\n", "code": code, "title": title})
		body = string(b)
	default:
		ctype = "text/plain; charset=UTF-8"
		body = code + "\n\n" + msg + "\n\n   "
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}

// logError logs a fault at ERROR and a refusal at INFO with the reason its body gives, so
// the operator reads in the log what the caller was told.
func (a *API) logError(r *http.Request, status int, msg string, fault bool, err error) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "request_id", reqlog.ID(r.Context())}
	if id := r.PathValue("id"); id != "" {
		attrs = append(attrs, "image", id)
	}
	switch {
	case fault:
		a.opt.Log.Error("image api fault", append(attrs, "err", err)...)
	case status >= 400:
		a.opt.Metrics.Refused("image", strconv.Itoa(status))
		if msg == "" {
			msg = err.Error()
		}
		a.opt.Log.Info("image api refused", append(attrs, "status", status, "reason", msg)...)
	}
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || unicode.IsUpper(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// escapeHTML escapes what HTML needs, leaving quotes readable (webob's html_escape).
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// negotiate picks the error body type as webob does: the best of text/html and
// application/json by q-value (ties go to HTML); no Accept header at all means any; an empty
// or unmatched one gets text/plain.
func negotiate(r *http.Request) string {
	vals, present := r.Header["Accept"]
	if !present {
		return "text/html"
	}
	header := strings.Join(vals, ",")
	if strings.TrimSpace(header) == "" {
		return "text/plain"
	}
	offers := []string{"text/html", "application/json"}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		if q := acceptQ(header, offer); q > bestQ {
			best, bestQ = offer, q
		}
	}
	if best == "" {
		return "text/plain"
	}
	return best
}

// acceptQ is the q-value an Accept header gives a media type: that of the most specific
// range matching it (exact, type/*, */*), 0 when none does.
func acceptQ(header, offer string) float64 {
	otype, _, _ := strings.Cut(offer, "/")
	q, spec := 0.0, -1
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		s := -1
		switch {
		case mt == offer:
			s = 2
		case mt == otype+"/*":
			s = 1
		case mt == "*/*":
			s = 0
		}
		if s <= spec {
			continue
		}
		spec, q = s, 1
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
	}
	return q
}
