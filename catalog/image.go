// Package catalog is the image catalog: Glance-compatible image records, their lifecycle
// state machine, visibility and members, tags and properties, and the translation between an
// image and the OCI content that holds its bytes. Both the Image API and the Registry API
// call it, so a rule exists once.
package catalog

import (
	"slices"
	"time"
)

// Status is an image's lifecycle state.
type Status string

// Glance's image states.
const (
	StatusQueued        Status = "queued"
	StatusSaving        Status = "saving"
	StatusUploading     Status = "uploading"
	StatusImporting     Status = "importing"
	StatusActive        Status = "active"
	StatusDeactivated   Status = "deactivated"
	StatusKilled        Status = "killed"
	StatusPendingDelete Status = "pending_delete"
	StatusDeleted       Status = "deleted"
)

// transitions is Glance's Image.valid_state_targets.
var transitions = map[Status][]Status{
	StatusQueued:        {StatusSaving, StatusUploading, StatusImporting, StatusActive, StatusDeleted},
	StatusSaving:        {StatusActive, StatusKilled, StatusDeleted, StatusQueued},
	StatusUploading:     {StatusImporting, StatusQueued, StatusDeleted},
	StatusImporting:     {StatusActive, StatusDeleted, StatusQueued},
	StatusActive:        {StatusPendingDelete, StatusDeleted, StatusDeactivated},
	StatusKilled:        {StatusDeleted},
	StatusPendingDelete: {StatusDeleted, StatusActive},
	StatusDeactivated:   {StatusActive, StatusDeleted},
}

// CanTransition reports whether from → to is allowed.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Visibility says who can see an image.
type Visibility string

// Glance's visibilities.
const (
	VisibilityPublic    Visibility = "public"
	VisibilityCommunity Visibility = "community"
	VisibilityShared    Visibility = "shared"
	VisibilityPrivate   Visibility = "private"
)

// ValidVisibility reports whether v is one of the four.
func ValidVisibility(v Visibility) bool {
	switch v {
	case VisibilityPublic, VisibilityCommunity, VisibilityShared, VisibilityPrivate:
		return true
	}
	return false
}

// Formats Glance accepts by default.
var (
	DiskFormats      = []string{"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
	ContainerFormats = []string{"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
)

func oneOf(v string, list []string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// Image is one catalog record.
type Image struct {
	ID              string            `json:"id"`
	Name            *string           `json:"name"`
	Owner           string            `json:"owner"`
	Status          Status            `json:"status"`
	Visibility      Visibility        `json:"visibility"`
	Protected       bool              `json:"protected"`
	Hidden          bool              `json:"os_hidden"`
	DiskFormat      *string           `json:"disk_format"`
	ContainerFormat *string           `json:"container_format"`
	Size            *int64            `json:"size"`
	VirtualSize     *int64            `json:"virtual_size"`
	Checksum        *string           `json:"checksum"`
	HashAlgo        *string           `json:"os_hash_algo"`
	HashValue       *string           `json:"os_hash_value"`
	MinDisk         int64             `json:"min_disk"`
	MinRAM          int64             `json:"min_ram"`
	Tags            []string          `json:"tags"`
	Properties      map[string]string `json:"properties"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	DeletedAt       *time.Time        `json:"deleted_at,omitempty"`

	// Where the bytes live in the registry, once the image has data.
	Repository string `json:"repository,omitempty"`
	// Reference is the digest of the manifest or index that stands for the image.
	Reference string `json:"reference,omitempty"`
	// DiskDigest is the digest of the blob holding the disk: the disk itself, or the tar
	// layer of a pushed containerDisk, where the disk starts at DiskOffset.
	DiskDigest string `json:"disk_digest,omitempty"`
	DiskOffset int64  `json:"disk_offset,omitempty"`
	// Pushed marks an image made from content pushed through the Registry API: its
	// repository is kept as pushed (no `latest` is moved there for it).
	Pushed bool `json:"pushed,omitempty"`
	// Referrer is "<repo>@<digest>" of the copy of a snapshot's artifact manifest listed as a
	// referrer of its base image, in the base's repository.
	Referrer string `json:"referrer,omitempty"`
	// SignedRefs are the digests of the image's manifests (Reference, the pushed manifest,
	// its derived views) that signatures were found for: the image's signature status is
	// the best verdict among them (signatures.go).
	SignedRefs []string `json:"signed_refs,omitempty"`
	// Reason says why an image was killed.
	Reason string `json:"reason,omitempty"`
	// Lease is the id of the process writing the image's data (saving, staging, importing):
	// see lease.go.
	Lease string `json:"lease,omitempty"`
	// Reserved is the size the write in progress declared (saving, or staging before its
	// data is in): it counts toward the owner's quotas until the write ends, so concurrent
	// writes cannot all pass one check (quota.go).
	Reserved int64 `json:"reserved,omitempty"`
	// Staged holds the hashes computed while data was staged; like Glance, the image shows
	// them only once the import has made it active.
	Staged *StagedHashes `json:"staged,omitempty"`
	// Stores names the blob stores the image's data was placed in (multi-store); empty: the
	// stores its disk blob is in (ImageStores).
	Stores []string `json:"stores,omitempty"`
}

// StagedHashes are the hashes of staged data.
type StagedHashes struct {
	MD5       string `json:"md5"`
	HashAlgo  string `json:"os_hash_algo"`
	HashValue string `json:"os_hash_value"`
	// Store is where the staged bytes went ("": the default store).
	Store string `json:"store,omitempty"`
}

// Limits of Glance's schema and quotas.
const (
	MaxNameLen       = 255
	MaxTagLen        = 255
	MaxTags          = 128
	MaxProperties    = 128
	MaxPropertyKey   = 255
	MaxPropertyValue = 65535
)

func str(s string) *string { return &s }

// validate checks an image's user-settable fields.
func (img *Image) validate() error {
	if img.Name != nil && len(*img.Name) > MaxNameLen {
		return errorf(BadRequest, "name is longer than %d characters", MaxNameLen)
	}
	if !ValidVisibility(img.Visibility) {
		return errorf(BadRequest, "invalid visibility %q", img.Visibility)
	}
	if img.DiskFormat != nil && !oneOf(*img.DiskFormat, DiskFormats) {
		return errorf(BadRequest, "invalid disk_format %q", *img.DiskFormat)
	}
	if img.ContainerFormat != nil && !oneOf(*img.ContainerFormat, ContainerFormats) {
		return errorf(BadRequest, "invalid container_format %q", *img.ContainerFormat)
	}
	if img.MinDisk < 0 || img.MinRAM < 0 {
		return errorf(BadRequest, "min_disk and min_ram must not be negative")
	}
	if len(img.Tags) > MaxTags {
		return errorf(TooMany, "more than %d tags", MaxTags)
	}
	for _, t := range img.Tags {
		if len(t) > MaxTagLen || t == "" {
			return errorf(BadRequest, "tag must be 1-%d characters", MaxTagLen)
		}
	}
	if len(img.Properties) > MaxProperties {
		return errorf(TooMany, "more than %d properties", MaxProperties)
	}
	for k, v := range img.Properties {
		if len(k) == 0 || len(k) > MaxPropertyKey {
			return errorf(BadRequest, "property name must be 1-%d characters", MaxPropertyKey)
		}
		if len(v) > MaxPropertyValue {
			return errorf(BadRequest, "property %s is longer than %d characters", k, MaxPropertyValue)
		}
	}
	return nil
}

// clone returns a copy of img that shares nothing with it, so a change to the copy (a
// JSON-patch decoding into a pointer field) leaves the original as it was.
func (img Image) clone() Image {
	c := img
	if c.Staged != nil {
		v := *c.Staged
		c.Staged = &v
	}
	for _, p := range []**string{&c.Name, &c.DiskFormat, &c.ContainerFormat, &c.Checksum, &c.HashAlgo, &c.HashValue} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	for _, p := range []**int64{&c.Size, &c.VirtualSize} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if c.DeletedAt != nil {
		t := *c.DeletedAt
		c.DeletedAt = &t
	}
	c.Tags = append([]string(nil), img.Tags...)
	c.SignedRefs = append([]string(nil), img.SignedRefs...)
	c.Stores = slices.Clone(img.Stores)
	c.Properties = make(map[string]string, len(img.Properties))
	for k, v := range img.Properties {
		c.Properties[k] = v
	}
	return c
}
