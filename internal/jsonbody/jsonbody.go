// Package jsonbody reads and writes the JSON bodies of the OpenStack-style APIs (identity,
// key manager): one bounded JSON value in, one JSON value out, HEAD answered with the
// headers only. Each API wraps a decoding Error in its own error format.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Error is a body that is not one JSON value of the expected shape.
type Error struct {
	Field    string // the field whose value has the wrong type, if that is the fault
	Expected string // its expected type
	Trailing bool   // more data after the value
	Err      error
}

func (e *Error) Error() string {
	switch {
	case e.Field != "":
		return fmt.Sprintf("Invalid input for field '%s': expected %s.", e.Field, e.Expected)
	case e.Trailing:
		return "Malformed request body: trailing data."
	}
	return fmt.Sprintf("Malformed request body: %v.", e.Err)
}

// Decode reads r's body, at most limit bytes (beyond it the error is an
// *http.MaxBytesError), as exactly one JSON value into v.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &Error{Field: te.Field, Expected: te.Type.String(), Err: err}
		}
		return &Error{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Trailing: true}
	}
	return nil
}

// Write writes v as JSON with status and contentType; HEAD gets the headers only.
func Write(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteBytes(w, r, status, contentType, b)
}

// WriteBytes writes b with status and contentType; HEAD gets the headers only.
func WriteBytes(w http.ResponseWriter, r *http.Request, status int, contentType string, b []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}
