package catalog

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/xloud/xloud-image/auth"
)

// Change is one JSON-patch operation on an image, already parsed by the Image API: Path is
// the single unescaped token after the leading "/".
type Change struct {
	Op    string // add, replace, remove
	Path  string
	Value json.RawMessage
}

// readOnly fields clients may never change.
var readOnly = map[string]bool{
	"created_at": true, "updated_at": true, "status": true, "checksum": true, "size": true,
	"virtual_size": true, "direct_url": true, "self": true, "file": true, "schema": true,
	"id": true, "os_hash_algo": true, "os_hash_value": true, "stores": true,
	"xloud_oci_reference": true, // derived from where the content is (OCIReference)
	PropSignatureStatus:   true, // the verdict of the image's signatures (signatures.go)
	PropSignatureSigners:  true,
}

// baseFields are the image's own fields (everything else is an extra property).
var baseFields = map[string]bool{
	"name": true, "visibility": true, "protected": true, "os_hidden": true,
	"container_format": true, "disk_format": true, "min_disk": true, "min_ram": true,
	"owner": true, "tags": true, "locations": true,
}

// ReadOnlyField reports whether a field is read-only (for create as well as update).
func ReadOnlyField(k string) bool { return readOnly[k] }

// Update applies JSON-patch changes with Glance's semantics: add overwrites, replace and
// remove of a missing property conflict, base fields cannot be removed, read-only and
// reserved fields are refused, formats change only while queued, owner only by an admin,
// public only by an admin.
func (c *Catalog) Update(ctx context.Context, pr auth.Principal, id string, changes []Change) (Image, error) {
	for _, ch := range changes {
		if err := c.precheck(ctx, pr, id, ch); err != nil {
			return Image{}, err
		}
	}
	if err := c.precheckProperties(ctx, id, changes); err != nil {
		return Image{}, err
	}
	img, err := c.mutate(ctx, pr, id, auth.ImageModify, func(img *Image) error {
		for _, ch := range changes {
			if !baseFields[ch.Path] {
				if err := c.allowPropertyChange(pr, *img, ch.Path, ch.Op); err != nil {
					return err
				}
			}
			if err := apply(img, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return img, err
	}
	return c.readable(pr, img), nil
}

// precheckProperties checks the values the changes set on extra properties against the
// metadata definitions, before the transaction (the checker reads the store itself).
func (c *Catalog) precheckProperties(ctx context.Context, id string, changes []Change) error {
	if c.Properties == nil {
		return nil
	}
	props := map[string]string{}
	var keys []string
	for _, ch := range changes {
		if ch.Op == "remove" || baseFields[ch.Path] || readOnly[ch.Path] {
			continue
		}
		var v string
		if json.Unmarshal(ch.Value, &v) != nil {
			continue // apply refuses a value that is no string
		}
		if _, seen := props[ch.Path]; !seen {
			keys = append(keys, ch.Path)
		}
		props[ch.Path] = v
	}
	if len(keys) == 0 {
		return nil
	}
	img, _, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	return c.checkProperties(ctx, img.Owner, props, keys)
}

// precheck refuses what no state of the image could allow, and asks the policy about
// visibility and owner changes before the transaction.
func (c *Catalog) precheck(ctx context.Context, pr auth.Principal, id string, ch Change) error {
	switch {
	case ch.Op != "add" && ch.Op != "replace" && ch.Op != "remove":
		return errorf(BadRequest, "unsupported op %q", ch.Op)
	case readOnly[ch.Path]:
		return errorf(Forbidden, "attribute '%s' is read-only", ch.Path)
	case ReservedProperty(ch.Path):
		return errorf(Forbidden, "attribute '%s' is reserved", ch.Path)
	case ch.Path == "locations":
		return errorf(Forbidden, "image locations are not supported")
	case baseFields[ch.Path] && ch.Op == "remove":
		return errorf(Forbidden, "attribute '%s' may not be removed", ch.Path)
	case ch.Op != "remove" && ch.Value == nil:
		return errorf(BadRequest, "%s of %s needs a value", ch.Op, ch.Path)
	case ch.Path == "owner" && !pr.Admin:
		return errorf(Forbidden, "owner can't be updated by non admin")
	case ch.Path == "visibility":
		var v Visibility
		if err := json.Unmarshal(ch.Value, &v); err != nil || !ValidVisibility(v) {
			return errorf(BadRequest, "invalid visibility")
		}
		old, _, err := c.load(ctx, id) // the policy needs the owner (communitize: a member of it)
		if err != nil {
			return err
		}
		img := old
		img.Visibility = v
		return c.checkVisibilityChange(ctx, pr, img, &old)
	}
	return nil
}

// apply makes one change to img.
func apply(img *Image, ch Change) error {
	if !baseFields[ch.Path] {
		return applyProperty(img, ch)
	}
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(ch.Value))
		if err := d.Decode(v); err != nil {
			return errorf(BadRequest, "invalid value for %s: %v", ch.Path, err)
		}
		return nil
	}
	switch ch.Path {
	case "name":
		return dec(&img.Name)
	case "visibility":
		return dec(&img.Visibility)
	case "protected":
		return dec(&img.Protected)
	case "os_hidden":
		return dec(&img.Hidden)
	case "owner":
		return dec(&img.Owner)
	case "min_disk":
		return dec(&img.MinDisk)
	case "min_ram":
		return dec(&img.MinRAM)
	case "tags":
		var tags []string
		if err := dec(&tags); err != nil {
			return err
		}
		img.Tags = dedupe(tags)
		return nil
	case "disk_format", "container_format":
		if img.Status != StatusQueued && img.Status != StatusImporting {
			return errorf(Forbidden, "attribute %s can be only replaced for a queued image", ch.Path)
		}
		if ch.Path == "disk_format" {
			return dec(&img.DiskFormat)
		}
		return dec(&img.ContainerFormat)
	}
	return errorf(BadRequest, "%s", ch.Path)
}

func applyProperty(img *Image, ch Change) error {
	_, exists := img.Properties[ch.Path]
	switch ch.Op {
	case "remove":
		if !exists {
			return errorf(Conflict, "property %s does not exist", ch.Path)
		}
		delete(img.Properties, ch.Path)
		return nil
	case "replace":
		if !exists {
			return errorf(Conflict, "property %s does not exist", ch.Path)
		}
	}
	var v string
	if err := json.Unmarshal(ch.Value, &v); err != nil {
		return errorf(BadRequest, "property %s must be a string", ch.Path)
	}
	img.Properties[ch.Path] = v
	return nil
}
