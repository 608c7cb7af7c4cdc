package imageapi

import (
	"net/http"
	"regexp"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// The JSON schemas of §1.2/§1.3, served unauthenticated. glanceclient builds its CLI options
// and validates images with the image schema, so it matches what the API sends. It leaves
// out `stores` (multi-store only): glanceclient 4.1 turns every schema property into an
// option and then fails with "conflicting option string: --stores" (§3.3).

const uuidPattern = `^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$`

type obj = map[string]any

func nullableEnum(vals []string) []any {
	out := []any{nil}
	for _, v := range vals {
		out = append(out, v)
	}
	return out
}

// customProperties are the operator properties of Glance's schema-image.json: extra
// properties (is_base false) that the schema types.
var customProperties = obj{
	"kernel_id": obj{"type": []string{"null", "string"}, "pattern": uuidPattern, "is_base": false,
		"description": "ID of an image in this catalog to use as the kernel when booting an AMI-style image."},
	"ramdisk_id": obj{"type": []string{"null", "string"}, "pattern": uuidPattern, "is_base": false,
		"description": "ID of an image in this catalog to use as the ramdisk when booting an AMI-style image."},
	"instance_uuid": obj{"type": "string", "is_base": false,
		"description": "The instance this image is associated with (informational only)."},
	"architecture": obj{"type": "string", "is_base": false, "description": "CPU architecture the image needs (e.g. x86_64, aarch64)."},
	"os_distro":    obj{"type": "string", "is_base": false, "description": "Common name of the operating system distribution (e.g. ubuntu)."},
	"os_version":   obj{"type": "string", "is_base": false, "description": "Operating system version as the distributor names it."},
	"description":  obj{"type": "string", "is_base": false, "description": "A human-readable description of the image."},
	"cinder_encryption_key_id": obj{"type": "string", "is_base": false,
		"description": "Identifier in the key manager of the key that encrypts this image's volume."},
	"cinder_encryption_key_deletion_policy": obj{"type": "string", "is_base": false,
		"enum":        []string{"on_image_deletion", "do_not_delete"},
		"description": "Whether the encryption key is deleted with the image."},
}

var uuidRE = regexp.MustCompile(uuidPattern)

// checkCustomProperty applies the schema's pattern and enum to the custom properties that
// have them (400 otherwise).
func checkCustomProperty(key, value string) error {
	switch key {
	case "kernel_id", "ramdisk_id":
		if !uuidRE.MatchString(value) {
			return errorf(http.StatusBadRequest, "Provided object does not match schema 'image': %s %q does not match the UUID pattern", key, value)
		}
	case "cinder_encryption_key_deletion_policy":
		if value != "on_image_deletion" && value != "do_not_delete" {
			return errorf(http.StatusBadRequest, "Provided object does not match schema 'image': %s %q is not one of on_image_deletion, do_not_delete", key, value)
		}
	}
	return nil
}

func imageSchema() obj {
	ro := func(typ any, desc string) obj { return obj{"type": typ, "readOnly": true, "description": desc} }
	props := obj{
		"id":         obj{"type": "string", "pattern": uuidPattern, "description": "An identifier for the image"},
		"name":       obj{"type": []string{"null", "string"}, "maxLength": catalog.MaxNameLen, "description": "Descriptive name for the image"},
		"visibility": obj{"type": "string", "enum": []string{"community", "public", "private", "shared"}, "description": "Scope of image accessibility"},
		"protected":  obj{"type": "boolean", "description": "If true, image will not be deletable."},
		"os_hidden":  obj{"type": "boolean", "description": "If true, image will not appear in default image list response."},
		"owner":      obj{"type": []string{"null", "string"}, "maxLength": 255, "description": "Owner of the image"},
		"container_format": obj{"type": []string{"null", "string"}, "enum": nullableEnum(catalog.ContainerFormats),
			"description": "Format of the container"},
		"disk_format": obj{"type": []string{"null", "string"}, "enum": nullableEnum(catalog.DiskFormats),
			"description": "Format of the disk"},
		"min_ram":  obj{"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
		"min_disk": obj{"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
		"tags": obj{"type": "array", "items": obj{"type": "string", "maxLength": catalog.MaxTagLen},
			"description": "List of strings related to the image"},
		"status": obj{"type": "string", "readOnly": true, "description": "Status of the image", "enum": []string{
			"queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"}},
		"checksum":                obj{"type": []string{"null", "string"}, "readOnly": true, "maxLength": 32, "description": "md5 hash of image contents."},
		"os_hash_algo":            obj{"type": []string{"null", "string"}, "readOnly": true, "maxLength": 64, "description": "Algorithm to calculate the os_hash_value"},
		"os_hash_value":           obj{"type": []string{"null", "string"}, "readOnly": true, "maxLength": 128, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"},
		"size":                    ro([]string{"null", "integer"}, "Size of image file in bytes"),
		"virtual_size":            ro([]string{"null", "integer"}, "Virtual size of image in bytes"),
		"created_at":              ro("string", "Date and time of image registration"),
		"updated_at":              ro("string", "Date and time of the last image modification"),
		"direct_url":              ro("string", "URL to access the image file kept in external store"),
		"xloud_oci_reference":     ro("string", "Where the image's content is in the registry: <registry host>/<repository>:<image id> (or @<digest>); set once the image has data"),
		"xloud_signature_status":  obj{"type": "string", "readOnly": true, "enum": []string{"unsigned", "untrusted", "invalid", "verified"}, "description": "What the image's cosign signatures prove under its project's signing policy"},
		"xloud_signature_signers": ro("string", "The keys (by name) and identities (authority:subject) whose signatures of the image verified, comma-separated"),
		"self":                    ro("string", "An image self url"),
		"file":                    ro("string", "An image file url"),
		"schema":                  ro("string", "An image schema url"),
		"locations": obj{"type": "array", "description": "A set of URLs to access the image file kept in external store",
			"items": obj{"type": "object", "required": []string{"url", "metadata"}, "properties": obj{
				"url": obj{"type": "string", "maxLength": 255}, "metadata": obj{"type": "object"}}}},
	}
	for k, v := range customProperties {
		props[k] = v
	}
	return obj{
		"name": "image", "properties": props, "additionalProperties": obj{"type": "string"},
		"links": []obj{{"href": "{self}", "rel": "self"}, {"href": "{file}", "rel": "enclosure"},
			{"href": "{schema}", "rel": "describedby"}},
	}
}

func memberSchema() obj {
	return obj{"name": "member", "properties": obj{
		"image_id":   obj{"type": "string", "pattern": uuidPattern, "description": "An identifier for the image"},
		"member_id":  obj{"type": "string", "description": "An identifier for the image member (project id)"},
		"status":     obj{"type": "string", "enum": []string{catalog.MemberPending, catalog.MemberAccepted, catalog.MemberRejected}, "description": "The status of this image member"},
		"created_at": obj{"type": "string", "description": "Date and time of image member creation"},
		"updated_at": obj{"type": "string", "description": "Date and time of last modification of image member"},
		"schema":     obj{"type": "string", "readOnly": true},
	}}
}

// getImageSchema is GET /v2/schemas/image.
func (a *API) getImageSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, imageSchema())
}

// getImagesSchema is GET /v2/schemas/images.
func (a *API) getImagesSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, obj{"name": "images",
		"properties": obj{"images": obj{"type": "array", "items": imageSchema()},
			"schema": obj{"type": "string"}, "first": obj{"type": "string"}, "next": obj{"type": "string"}},
		"links": []obj{{"href": "{first}", "rel": "first"}, {"href": "{next}", "rel": "next"},
			{"href": "{schema}", "rel": "describedby"}},
	})
}

// getMemberSchema is GET /v2/schemas/member.
func (a *API) getMemberSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, memberSchema())
}

// getMembersSchema is GET /v2/schemas/members.
func (a *API) getMembersSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, obj{"name": "members",
		"properties": obj{"members": obj{"type": "array", "items": memberSchema()}, "schema": obj{"type": "string"}},
		"links":      []obj{{"href": "{schema}", "rel": "describedby"}},
	})
}
