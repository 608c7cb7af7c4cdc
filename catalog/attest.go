package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/storage"
)

// The server's attestation of what it checked: when an image becomes active (a Glance upload
// or import, or a pushed VM disk) the server signs an in-toto statement of its disk
// inspection and stores it as cosign stores an attestation — the legacy `.att` tag scheme,
// which `cosign verify-attestation` (v2.6) reads by default: tag sha256-<hex>.att, an image
// manifest whose layers are DSSE envelopes (application/vnd.dsse.envelope.v1+json) annotated
// with their predicate type. The manifest also names the image as its subject, so it follows
// the image's visibility and shows in the referrers API (cosign ignores the field: its
// artifactType is no sigstore bundle).

// PredicateDiskInspection is the predicate type of the server's disk-inspection attestation.
const PredicateDiskInspection = "https://xloud.tech/attestations/disk-inspection/v1"

// Media types and annotations of cosign's attestation layout (pkg/oci/static, pkg/types).
const (
	mediaTypeDSSE        = "application/vnd.dsse.envelope.v1+json"
	payloadTypeInToto    = "application/vnd.in-toto+json"
	annotationCosignSig  = "dev.cosignproject.cosign/signature"
	annotationPredicate  = "predicateType"
	annotationServerKey  = "tech.xloud.attestation.key-id"
	inTotoStatementType  = "https://in-toto.io/Statement/v1"
	attestationTagSuffix = ".att"
)

// Attester signs the server's statements: signing.ServerKey.
type Attester interface {
	// SignDSSE returns a DSSE envelope of payload, of payloadType.
	SignDSSE(payloadType string, payload []byte) ([]byte, error)
	// ID names the signing key.
	ID() string
}

// DiskInspection is the predicate of the server's attestation.
type DiskInspection struct {
	ImageID string `json:"image_id"`
	// DiskFormat is the image's format, which the inspection found the bytes to be.
	DiskFormat string `json:"disk_format"`
	// DetectedFormat is what the inspector read in the bytes (raw for a disk with no header).
	DetectedFormat string `json:"detected_format,omitempty"`
	VirtualSize    int64  `json:"virtual_size"`
	Size           int64  `json:"size"`
	// Safety is the verdict of the safety checks: "safe" (unsafe images are never activated).
	Safety string `json:"safety"`
	// Digests: the disk file's sha256 (the blob), its os_hash, the image's manifest.
	Digests     map[string]string `json:"digests"`
	Repository  string            `json:"repository"`
	Source      string            `json:"source"` // image-api or registry
	InspectedAt time.Time         `json:"inspected_at"`
	KeyID       string            `json:"key_id"`
}

// statement is an in-toto statement v1.
type statement struct {
	Type          string          `json:"_type"`
	Subject       []subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     *DiskInspection `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// AttestationTag is the tag cosign reads the attestations of the manifest d from.
func AttestationTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded() + attestationTagSuffix
}

// attest signs the disk inspection of an image just activated and stores it for each of
// the manifests a client may resolve the image to (targets: the tagged index, the pushed
// manifest). Without an Attester it does nothing. A failure is logged, not returned: the
// image is active already, and the attestation says what was checked, it does not gate.
func (c *Catalog) attest(ctx context.Context, img Image, pred DiskInspection, targets ...digest.Digest) {
	if c.Attester == nil {
		return
	}
	for i, d := range targets {
		if d == "" || (i > 0 && d == targets[0]) {
			continue
		}
		if err := c.attestManifest(ctx, img.Repository, d, pred); err != nil {
			c.Log.Error("store the disk-inspection attestation", "image", img.ID, "repository", img.Repository,
				"manifest", d, "err", err)
		}
	}
}

// attestManifest writes the attestation of manifest d of repo under d's .att tag, beside the
// attestations already there (cosign attest appends the same way).
func (c *Catalog) attestManifest(ctx context.Context, repo string, d digest.Digest, pred DiskInspection) error {
	rec, _, err := c.store.GetManifest(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("attested manifest %s: %w", d, err)
	}
	pred.KeyID = c.Attester.ID()
	pred.Digests = maps.Clone(pred.Digests)
	pred.Digests["manifest"] = d.String()
	st, err := json.Marshal(statement{Type: inTotoStatementType, PredicateType: PredicateDiskInspection, Predicate: &pred,
		Subject: []subject{{Name: repo, Digest: map[string]string{d.Algorithm().String(): d.Encoded()}}}})
	if err != nil {
		return err
	}
	env, err := c.Attester.SignDSSE(payloadTypeInToto, st)
	if err != nil {
		return err
	}
	layer, err := c.putContent(ctx, repo, mediaTypeDSSE, env)
	if err != nil {
		return fmt.Errorf("store attestation envelope: %w", err)
	}
	layer.Annotations = map[string]string{annotationCosignSig: "", annotationPredicate: PredicateDiskInspection,
		annotationServerKey: c.Attester.ID()}
	layers, err := c.existingAttestations(ctx, repo, d)
	if err != nil {
		return err
	}
	layers = append(layers, layer)
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest.String()
	}
	// The config cosign writes (a go-containerregistry empty image with the layers' diff ids).
	cfg, _ := json.Marshal(map[string]any{"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z",
		"config": map[string]any{}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfgDesc, err := c.putContent(ctx, repo, v1.MediaTypeImageConfig, cfg)
	if err != nil {
		return fmt.Errorf("store attestation config: %w", err)
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: layers,
		Subject: &v1.Descriptor{MediaType: rec.MediaType, Digest: d, Size: rec.Size}}
	m.SchemaVersion = 2
	content, err := json.Marshal(m)
	if err != nil {
		return err
	}
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))}
	return c.putManifest(ctx, repo, desc, content, []string{AttestationTag(d)})
}

// existingAttestations are the layers already under d's .att tag (none when it has none).
func (c *Catalog) existingAttestations(ctx context.Context, repo string, d digest.Digest) ([]v1.Descriptor, error) {
	at, err := c.store.ResolveTag(ctx, repo, AttestationTag(d))
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read attestations of %s: %w", d, err)
	}
	rec, content, err := c.store.GetManifest(ctx, repo, at)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read attestations of %s: %w", d, err)
	}
	var m v1.Manifest
	if rec.MediaType != v1.MediaTypeImageManifest || json.Unmarshal(content, &m) != nil {
		return nil, nil // not cosign's: replaced, as a cosign attest would
	}
	var out []v1.Descriptor
	for _, l := range m.Layers {
		if strings.HasPrefix(l.MediaType, mediaTypeDSSE) {
			out = append(out, l)
		}
	}
	return out, nil
}

// dropAttestations removes the attestations of manifest d of repo (the manifest under its
// .att tag) as the image they attest goes: nothing is left to attest.
func (c *Catalog) dropAttestations(ctx context.Context, repo string, d digest.Digest) error {
	at, err := c.store.ResolveTag(ctx, repo, AttestationTag(d))
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("attestations of %s@%s: %w", repo, d, err)
	}
	if err := c.store.DeleteManifest(ctx, repo, at); err != nil && !errors.Is(err, storage.ErrManifestUnknown) {
		return fmt.Errorf("delete attestations of %s@%s: %w", repo, d, err)
	}
	return nil
}
