package identityapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// Error is a Keystone API error: its status and the message of Keystone's error body
// {"error":{"code":…,"title":…,"message":…}}.
type Error struct {
	Status  int
	Message string
	// Reason is what the log says about a refusal (never secrets); empty: the message.
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

// errorBody is Keystone's error body.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

// Keystone's messages (keystone/exception.py).
const (
	msgUnauthorized = "The request you have made requires authentication."
	msgUnexpected   = "An unexpected error prevented the server from fulfilling your request."
	msgTooLarge     = "Request is too large."
)

// missing is Keystone's ValidationError for a required attribute that is absent.
func missing(attribute, target string) *Error {
	return badRequest("Expecting to find %s in %s. The server could not comply with the request since it is "+
		"either malformed or otherwise incorrect. The client is assumed to be in error.", attribute, target)
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// unauthorized is Keystone's 401; reason goes to the log only.
func unauthorized(reason string) *Error {
	return &Error{Status: http.StatusUnauthorized, Message: msgUnauthorized, Reason: reason}
}

func forbidden(act auth.IdentityAction) *Error {
	return &Error{Status: http.StatusForbidden,
		Message: fmt.Sprintf("You are not authorized to perform the requested action: %s.", act)}
}

// notFound is Keystone's "Could not find <kind>: <id>."
func notFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("Could not find %s: %s.", kind, id)}
}

func conflict(kind, name string) *Error {
	return &Error{Status: http.StatusConflict, Message: fmt.Sprintf(
		"Conflict occurred attempting to store %s - Duplicate entry found with name %s at domain ID %s.",
		kind, name, auth.DefaultDomainID)}
}

// asError maps an error from a handler or from auth/ onto the Keystone error to send.
func asError(err error) *Error {
	var e *Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Message: msgTooLarge}
	case errors.Is(err, auth.ErrTokenExpired):
		return unauthorized("token expired")
	case errors.Is(err, auth.ErrLockedOut):
		return unauthorized("locked out after repeated failed sign-ins")
	case auth.IsAuthError(err):
		return unauthorized("invalid credentials")
	case errors.Is(err, auth.ErrInvalid):
		return badRequest("%s", err.Error())
	case errors.Is(err, auth.ErrConflict):
		return &Error{Status: http.StatusConflict, Message: "Conflict occurred attempting to store - " + err.Error() + "."}
	case errors.Is(err, auth.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Message: "Could not find: " + err.Error() + "."}
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Message: "You are not authorized to perform the requested action."}
	}
	return &Error{Status: http.StatusInternalServerError, Message: msgUnexpected, Reason: err.Error()}
}

// writeError writes err as Keystone does: the JSON error body (none for HEAD), and for a 401
// the WWW-Authenticate header naming the identity endpoint. Refusals and faults are logged
// once, without credentials.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	switch {
	case e.Status >= 500:
		slog.Error("identity API error", "method", r.Method, "path", r.URL.Path, "err", e.Reason)
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		reason := e.Reason
		if reason == "" {
			reason = e.Message
		}
		slog.Warn("identity access refused", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "status", e.Status, "reason", reason)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", h.apiBase(r)+"/identity"))
	}
	body, _ := json.Marshal(errorBody{Error: errorJSON{Code: e.Status, Title: http.StatusText(e.Status), Message: e.Message}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
