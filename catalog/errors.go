package catalog

import (
	"errors"
	"fmt"
)

// Domain errors. Each API maps them to its own wire format by their Kind (KindOf); an
// *Error of a kind matches its sentinel under errors.Is.
var (
	ErrNotFound  = errors.New("image not found")
	ErrForbidden = errors.New("forbidden")
	ErrConflict  = errors.New("conflict")
	ErrInvalid   = errors.New("invalid")
	ErrTooMany   = errors.New("over the limit")
	ErrBadState  = errors.New("not allowed in the image's status")
	ErrGone      = errors.New("image deleted meanwhile")
	// ErrNoData means an image has no data to download (Glance answers 204).
	ErrNoData = errors.New("image has no data")
	// ErrBadData means the data is not what the image declares or fails the safety checks
	// (Glance 2025.1 answers 415); nothing is stored.
	ErrBadData = errors.New("image data refused")
	// ErrOverLimit means a project's unified limit (quota) refuses the operation.
	ErrOverLimit = errors.New("over a project limit")
)

// Kind is what went wrong, in terms each door maps to its own codes. The zero Kind is no
// refusal: a fault of the server.
type Kind int8

// The kinds, one per sentinel.
const (
	NotFound   Kind = iota + 1 // ErrNotFound
	Forbidden                  // ErrForbidden
	Conflict                   // ErrConflict
	BadRequest                 // ErrInvalid
	TooMany                    // ErrTooMany: over a limit
	BadState                   // ErrBadState
	Gone                       // ErrGone
	NoData                     // ErrNoData
	BadData                    // ErrBadData: the content itself is refused
	OverLimit                  // ErrOverLimit: a project's quota
)

var sentinels = [...]error{
	NotFound: ErrNotFound, Forbidden: ErrForbidden, Conflict: ErrConflict, BadRequest: ErrInvalid,
	TooMany: ErrTooMany, BadState: ErrBadState, Gone: ErrGone, NoData: ErrNoData, BadData: ErrBadData,
	OverLimit: ErrOverLimit,
}

// Sentinel is the error errors.Is matches for the kind (nil for none).
func (k Kind) Sentinel() error {
	if k <= 0 || int(k) >= len(sentinels) {
		return nil
	}
	return sentinels[k]
}

// Error is a refusal: its Kind, a Message meant for the client (may be empty: the door's
// default text), and the cause meant for logs (may be nil).
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

// errorf builds a refusal whose message is the formatted text.
func errorf(k Kind, format string, a ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, a...)}
}

// refusal builds a refusal whose message is the text of cause, which says why to the client
// (a disk-format check, a bad URI).
func refusal(k Kind, cause error) *Error {
	return &Error{Kind: k, Message: cause.Error(), Err: cause}
}

// Error is the sentinel's text, the message and the cause, for logs.
func (e *Error) Error() string {
	s := "error"
	if se := e.Kind.Sentinel(); se != nil {
		s = se.Error()
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil && e.Err.Error() != e.Message {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap is the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the kind's sentinel.
func (e *Error) Is(target error) bool { return target != nil && target == e.Kind.Sentinel() }

// KindOf is the kind of err and the message for the client: that of the *Error in its
// chain, or of a bare sentinel (no message). Zero for anything else: a fault.
func KindOf(err error) (Kind, string) {
	var e *Error
	if errors.As(err, &e) && e.Kind != 0 {
		return e.Kind, e.Message
	}
	for k := Kind(1); int(k) < len(sentinels); k++ {
		if errors.Is(err, sentinels[k]) {
			return k, ""
		}
	}
	return 0, ""
}

// IsNotFound reports whether err is a missing record.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
