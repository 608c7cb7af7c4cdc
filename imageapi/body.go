package imageapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/xloud/xloud-image/catalog"
)

// maxJSONBody bounds every JSON request body (larger is 413).
const maxJSONBody = 1 << 20

// readJSON reads a JSON request body of at most maxJSONBody bytes; an empty one is 400.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errorf(http.StatusBadRequest, "Body expected in request.")
	}
	return b, nil
}

// decodeObject reads a JSON object body.
func decodeObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	b, err := readJSON(w, r)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, errorf(http.StatusBadRequest, "The request body must be a JSON object.")
	}
	return obj, nil
}

// decodeArray reads a JSON array body.
func decodeArray(w http.ResponseWriter, r *http.Request) ([]json.RawMessage, error) {
	b, err := readJSON(w, r)
	if err != nil {
		return nil, err
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil || arr == nil {
		return nil, errorf(http.StatusBadRequest, "Request body must be a JSON array of operation objects.")
	}
	return arr, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// baseFieldTypes are the JSON types the image schema gives the fields a client may set.
var baseFieldTypes = map[string]string{
	"id": "string", "name": "string or null", "visibility": "string", "protected": "boolean",
	"os_hidden": "boolean", "container_format": "string or null", "disk_format": "string or null",
	"min_disk": "integer", "min_ram": "integer", "owner": "string or null", "tags": "array of strings",
}

// checkBaseValue checks a base field's value against the image schema's type for it (the
// catalog checks ranges, enums and lengths).
func checkBaseValue(field string, raw json.RawMessage) error {
	want := baseFieldTypes[field]
	var ok bool
	switch want {
	case "string or null":
		var s string
		ok = isNull(raw) || json.Unmarshal(raw, &s) == nil
	case "string":
		var s string
		ok = !isNull(raw) && json.Unmarshal(raw, &s) == nil
	case "boolean":
		var b bool
		ok = !isNull(raw) && json.Unmarshal(raw, &b) == nil
	case "integer":
		var n int64
		ok = !isNull(raw) && json.Unmarshal(raw, &n) == nil
	case "array of strings":
		var l []string
		ok = !isNull(raw) && json.Unmarshal(raw, &l) == nil
	default:
		return nil
	}
	if !ok {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'image': %s is not of type %s", field, want)
	}
	return nil
}

// checkProperty: extra properties are strings with names of 1-255 characters (and the
// schema's pattern or enum, for the custom properties that have one).
func checkProperty(key string, raw json.RawMessage) error {
	if key == "" || len(key) > catalog.MaxPropertyKey {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'image': property names must be 1-%d characters", catalog.MaxPropertyKey)
	}
	var s string
	if raw != nil && (isNull(raw) || json.Unmarshal(raw, &s) != nil) {
		return errorf(http.StatusBadRequest, "Provided object does not match schema 'image': property %s is not of type string", key)
	}
	if raw != nil {
		return checkCustomProperty(key, s)
	}
	return nil
}

// isBaseField reports the image fields that are not extra properties.
func isBaseField(k string) bool {
	_, ok := baseFieldTypes[k]
	return ok || k == "locations" || catalog.ReadOnlyField(k)
}

// refuseField refuses fields no client may set: read-only (403), reserved (403) and
// locations (not supported here, 403).
func refuseField(k string, create bool) error {
	switch {
	case k == "id" && create:
		return nil
	case catalog.ReadOnlyField(k):
		return errorf(http.StatusForbidden, "Attribute '%s' is read-only.", k)
	case catalog.ReservedProperty(k):
		return errorf(http.StatusForbidden, "Attribute '%s' is reserved.", k)
	case k == "locations":
		return errorf(http.StatusForbidden, "Image locations are not supported by this service.")
	}
	return nil
}
