// Package manifest parses and checks OCI and Docker manifests and indexes: which media type a
// body is, what blobs and manifests it refers to, its subject and artifact type.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types the registry stores as manifests.
const (
	MediaTypeOCIManifest      = v1.MediaTypeImageManifest
	MediaTypeOCIIndex         = v1.MediaTypeImageIndex
	MediaTypeDockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeEmptyJSON        = v1.MediaTypeEmptyJSON
	mediaTypeDockerForeignTar = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// ErrInvalid wraps every reason a body is not an acceptable manifest.
var ErrInvalid = errors.New("manifest invalid")

// Manifest is what the registry needs to know about a manifest body.
type Manifest struct {
	MediaType string
	// ArtifactType is the artifactType field or, for an image manifest without one, its
	// config's media type (what the referrers API reports).
	ArtifactType string
	Annotations  map[string]string
	Subject      *v1.Descriptor
	// Blobs must exist in the repository before the manifest is accepted (config, layers).
	Blobs []digest.Digest
	// Manifests are the entries of an index; they may be absent (sparse index).
	Manifests []digest.Digest
}

// wire covers the fields of every supported manifest and index.
type wire struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// IsManifestType reports whether mt is a media type the registry stores as a manifest.
func IsManifestType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// Parse reads body, sent with Content-Type contentType, and checks it is a well-formed
// manifest or index.
func Parse(contentType string, body []byte) (*Manifest, error) {
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, invalid("not valid JSON: %v", err)
	}
	mt, err := mediaType(contentType, &w)
	if err != nil {
		return nil, err
	}
	if w.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	m := &Manifest{MediaType: mt, ArtifactType: w.ArtifactType, Annotations: w.Annotations}
	if w.Subject != nil {
		if err := checkDescriptor("subject", *w.Subject); err != nil {
			return nil, err
		}
		m.Subject = w.Subject
	}
	switch mt {
	case MediaTypeOCIIndex, MediaTypeDockerList:
		err = m.fromIndex(&w)
	default:
		err = m.fromImage(&w)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// mediaType settles the body's media type from its mediaType field and the Content-Type it
// was sent with; they must agree when both are given.
func mediaType(contentType string, w *wire) (string, error) {
	ct := strings.TrimSpace(strings.Split(contentType, ";")[0])
	mt := w.MediaType
	switch {
	case mt != "" && IsManifestType(ct) && ct != mt:
		return "", invalid("mediaType %q does not match Content-Type %q", mt, ct)
	case mt == "" && IsManifestType(ct):
		mt = ct
	case mt == "" && w.Manifests != nil:
		mt = MediaTypeOCIIndex
	case mt == "":
		mt = MediaTypeOCIManifest
	}
	if !IsManifestType(mt) {
		return "", invalid("unsupported manifest media type %q", mt)
	}
	return mt, nil
}

func (m *Manifest) fromImage(w *wire) error {
	if w.Manifests != nil {
		return invalid("an image manifest has no manifests field")
	}
	if w.Config == nil {
		return invalid("config is required")
	}
	if err := checkDescriptor("config", *w.Config); err != nil {
		return err
	}
	if m.MediaType == MediaTypeOCIManifest && w.Config.MediaType == MediaTypeEmptyJSON && w.ArtifactType == "" {
		return invalid("artifactType is required when config is the empty descriptor")
	}
	m.Blobs = append(m.Blobs, w.Config.Digest)
	if m.ArtifactType == "" {
		m.ArtifactType = w.Config.MediaType
	}
	for i, l := range w.Layers {
		if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
			return err
		}
		if nonDistributable(l) {
			continue // its bytes live elsewhere by design
		}
		m.Blobs = append(m.Blobs, l.Digest)
	}
	return nil
}

func (m *Manifest) fromIndex(w *wire) error {
	if w.Config != nil || w.Layers != nil {
		return invalid("an index has no config or layers")
	}
	for i, d := range w.Manifests {
		if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), d); err != nil {
			return err
		}
		m.Manifests = append(m.Manifests, d.Digest)
	}
	return nil
}

func checkDescriptor(where string, d v1.Descriptor) error {
	if d.MediaType == "" {
		return invalid("%s: mediaType is required", where)
	}
	if err := d.Digest.Validate(); err != nil {
		return invalid("%s: digest %q: %v", where, d.Digest, err)
	}
	if d.Size < 0 {
		return invalid("%s: negative size", where)
	}
	if d.Data != nil && int64(len(d.Data)) != d.Size {
		return invalid("%s: data is %d bytes, size says %d", where, len(d.Data), d.Size)
	}
	if d.Data != nil && d.Digest.Algorithm().Available() && d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
		return invalid("%s: data does not match digest", where)
	}
	return nil
}

// nonDistributable reports layers whose bytes registries are not expected to hold.
func nonDistributable(d v1.Descriptor) bool {
	return strings.Contains(d.MediaType, "nondistributable") ||
		d.MediaType == mediaTypeDockerForeignTar || len(d.URLs) > 0
}
