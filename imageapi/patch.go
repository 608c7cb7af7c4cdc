package imageapi

import (
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/xloud/xloud-image/catalog"
)

// JSON-patch media types of PATCH /v2/images/{id} (§1.5).
const (
	mediaPatch21 = "application/openstack-images-v2.1-json-patch"
	mediaPatch20 = "application/openstack-images-v2.0-json-patch" // the deprecated draft form
)

var patchOps = map[string]bool{"add": true, "remove": true, "replace": true}

// parsePatch reads a JSON-patch body into changes: the v2.1 form
// [{"op":"add","path":"/x","value":…}] or the 2.0 draft form [{"add":"/x","value":…}].
// draft reports the latter. Another media type is 415 with Accept-Patch; a malformed
// operation or path is 400.
func parsePatch(w http.ResponseWriter, r *http.Request) ([]catalog.Change, bool, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != mediaPatch21 && mt != mediaPatch20 {
		return nil, false, errorf(http.StatusUnsupportedMediaType, "Unsupported Content-Type %q: use %s.", mt, mediaPatch21).
			withHeader("Accept-Patch", mediaPatch20+", "+mediaPatch21)
	}
	draft := mt == mediaPatch20
	ops, err := decodeArray(w, r)
	if err != nil {
		return nil, draft, err
	}
	changes := make([]catalog.Change, 0, len(ops))
	for _, raw := range ops {
		ch, err := parseOp(raw, draft)
		if err != nil {
			return nil, draft, err
		}
		changes = append(changes, ch)
	}
	return changes, draft, nil
}

// parseOp reads one operation object.
func parseOp(raw json.RawMessage, draft bool) (catalog.Change, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return catalog.Change{}, errorf(http.StatusBadRequest, "Operations must be JSON objects.")
	}
	var op, path string
	if draft {
		for k := range patchOps {
			if p, ok := obj[k]; ok {
				if op != "" || json.Unmarshal(p, &path) != nil {
					return catalog.Change{}, errorf(http.StatusBadRequest, `Operation objects must contain exactly one member named "add", "remove", or "replace".`)
				}
				op = k
			}
		}
	} else if json.Unmarshal(obj["op"], &op) != nil || json.Unmarshal(obj["path"], &path) != nil {
		return catalog.Change{}, errorf(http.StatusBadRequest, `Operation objects must contain a string "op" and a string "path".`)
	}
	if !patchOps[op] {
		return catalog.Change{}, errorf(http.StatusBadRequest, `Invalid operation: %q. Operation objects must contain exactly one member named "add", "remove", or "replace".`, op)
	}
	field, err := parsePointer(path)
	if err != nil {
		return catalog.Change{}, err
	}
	ch := catalog.Change{Op: op, Path: field}
	if op != "remove" {
		v, ok := obj["value"]
		if !ok {
			return catalog.Change{}, errorf(http.StatusBadRequest, "Operation \"%s\" requires a member named \"value\".", op)
		}
		ch.Value = v
	}
	if err := refuseField(field, false); err != nil {
		return ch, err
	}
	if ch.Value == nil {
		return ch, nil
	}
	if isBaseField(field) {
		return ch, checkBaseValue(field, ch.Value)
	}
	return ch, checkProperty(field, ch.Value)
}

// locationsRE is the one pointer allowed two tokens: /locations/N or /locations/-.
var locationsRE = regexp.MustCompile(`^/locations/(\d+|-)$`)

// parsePointer applies Glance's restricted JSON pointer: "/" then exactly one token with ~0
// and ~1 escapes (only /locations/N has two); anything else is 400.
func parsePointer(p string) (string, error) {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, "Pointer `%s` %s.", p, why)
	}
	if !strings.HasPrefix(p, "/") {
		return "", bad(`does not start with "/"`)
	}
	if strings.Contains(p, "//") {
		return "", bad(`contains adjacent "/"`)
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		return "", bad(`end with "/"`)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return "", bad(`contains "~" not part of a recognized escape sequence`)
		}
	}
	if locationsRE.MatchString(p) {
		return "locations", nil
	}
	tokens := strings.Split(p[1:], "/")
	if len(tokens) != 1 || tokens[0] == "" {
		return "", errorf(http.StatusBadRequest, "Invalid JSON pointer for this resource: '%s'", p)
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(tokens[0]), nil
}
