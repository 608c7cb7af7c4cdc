package imageapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xloud/xloud-image/catalog"
)

// timeFormat is Glance's: UTC, no fraction.
const timeFormat = "2006-01-02T15:04:05Z"

func wireTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// hiddenProperties are kept from clients (Glance hides them too).
var hiddenProperties = map[string]bool{"os_glance_stage_host": true, "os_glance_hash_op_host": true}

// imageJSON is the image representation of §1.3: every base field, null where there is no
// value; extra properties as strings flat at the top level; self, file and schema as
// relative paths. An image with data also shows where the registry serves it,
// xloud_oci_reference, under registry (a host, or "" for the reference without one).
func imageJSON(img catalog.Image, registry string) map[string]any {
	out := make(map[string]any, 25+len(img.Properties))
	for k, v := range img.Properties {
		if !hiddenProperties[k] {
			out[k] = v
		}
	}
	if _, ok := out[catalog.PropSignatureStatus]; !ok {
		out[catalog.PropSignatureStatus] = catalog.SigUnsigned // a new image, not yet written back
	}
	if ref := catalog.OCIReference(img); ref != "" {
		out["xloud_oci_reference"] = strings.TrimPrefix(registry+"/"+ref, "/")
	}
	tags := img.Tags
	if tags == nil {
		tags = []string{}
	}
	var owner *string
	if img.Owner != "" {
		owner = &img.Owner
	}
	for k, v := range map[string]any{
		"id": img.ID, "name": img.Name, "status": img.Status, "visibility": img.Visibility,
		"protected": img.Protected, "os_hidden": img.Hidden, "checksum": img.Checksum,
		"os_hash_algo": img.HashAlgo, "os_hash_value": img.HashValue, "owner": owner,
		"size": img.Size, "virtual_size": img.VirtualSize, "container_format": img.ContainerFormat,
		"disk_format": img.DiskFormat, "min_ram": img.MinRAM, "min_disk": img.MinDisk,
		"created_at": wireTime(img.CreatedAt), "updated_at": wireTime(img.UpdatedAt), "tags": tags,
		"self": "/v2/images/" + img.ID, "file": "/v2/images/" + img.ID + "/file", "schema": "/v2/schemas/image",
	} {
		out[k] = v
	}
	return out
}

// imageView is imageJSON as this server shows it: with multi-store, the stores holding
// the image's data as Glance shows them, sorted and comma-joined (absent without data).
func (a *API) imageView(r *http.Request, img catalog.Image) map[string]any {
	out := imageJSON(img, a.registryHost(r))
	if a.cat.MultiStore {
		if stores := a.cat.ImageStores(r.Context(), img); len(stores) > 0 {
			out["stores"] = strings.Join(stores, ",")
		}
	}
	return out
}

// memberJSON is an image member.
type memberJSON struct {
	ImageID   string `json:"image_id"`
	MemberID  string `json:"member_id"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	Schema    string `json:"schema"`
}

func toMemberJSON(m catalog.Member) memberJSON {
	return memberJSON{ImageID: m.ImageID, MemberID: m.MemberID, Status: m.Status,
		CreatedAt: wireTime(m.CreatedAt), UpdatedAt: wireTime(m.UpdatedAt), Schema: "/v2/schemas/member"}
}

// writeJSON answers with a JSON document.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b) // a client gone away has nothing left to be told
	return nil
}
