package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/signing"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// Signature statuses of an image (xloud_signature_status).
const (
	SigUnsigned  = "unsigned"
	SigUntrusted = "untrusted"
	SigInvalid   = "invalid"
	SigVerified  = "verified"
)

// Read-only image properties the server keeps from the verdict of the image's manifest.
const (
	PropSignatureStatus  = "xloud_signature_status"
	PropSignatureSigners = "xloud_signature_signers"
)

// Media types of signature content.
const (
	mtSimpleSigning    = "application/vnd.dev.cosign.simplesigning.v1+json"
	artifactCosignSig  = "application/vnd.dev.cosign.artifact.sig.v1+json"
	artifactBundle     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	artifactNotation   = "application/vnd.cncf.notary.signature"
	maxSignatureLayers = 1000    // cosign's own limit on a .sig manifest
	maxSignatureBlob   = 1 << 20 // a payload or bundle is a few KiB
)

// sigTagRE is cosign's tag for the signatures of sha256:<hex>.
var sigTagRE = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.sig$`)

// signatureArtifactTagRE: tags of cosign's signature, attestation and SBOM content and of
// the referrers fallback index; what they name is never an image to enforce on.
var signatureArtifactTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$`)

// Metadata keys of signing (beside the catalog's):
//
//	signing:policy:<project>     signing.Policy of the project
//	signing:mode:<project>       its mode alone, read on every pull
//	sigverdict:<repo>@<digest>   Verdict of the signatures of a manifest
//	set sigsubjects:<project>    <repo>@<digest> of the manifests with signatures
//	sigartifact:<repo>@<digest>  marks a .sig manifest (signature content)
func keySigningPolicy(project string) string { return "signing:policy:" + project }
func keySigningMode(project string) string   { return "signing:mode:" + project }
func keyVerdict(repo, d string) string       { return "sigverdict:" + repo + "@" + d }
func keySigSubjects(project string) string   { return "sigsubjects:" + project }
func keySigArtifact(repo, d string) string   { return "sigartifact:" + repo + "@" + d }

// Verdict is what the signatures of one manifest prove under its project's policy.
type Verdict struct {
	Status  string           `json:"status"`
	Signers []string         `json:"signers"`
	Results []signing.Result `json:"results"`
	// Known maps signature values once verified to their signer and payload: the same
	// value over other bytes later is a tampered payload, not an unknown signer.
	Known map[string]KnownSignature `json:"known,omitempty"`
}

// KnownSignature is a signature value that once verified.
type KnownSignature struct {
	Signer  string `json:"signer"`
	Payload string `json:"payload"`
}

// signatureProps sets the read-only signature properties of img from the verdict of its
// manifest; every image write goes through it, so they never go stale.
func signatureProps(tx meta.Tx, img *Image) error {
	status, signers := SigUnsigned, ""
	if img.Repository != "" {
		for _, ref := range imageSignedRefs(*img) {
			var v Verdict
			err := getJSONTx(tx, keyVerdict(img.Repository, ref), &v)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("signature verdict of %s: %w", img.ID, err)
			}
			if statusRank[v.Status] > statusRank[status] {
				status, signers = v.Status, strings.Join(v.Signers, ",")
			}
		}
	}
	if img.Properties == nil {
		img.Properties = map[string]string{}
	} else if img.Properties[PropSignatureStatus] == status && img.Properties[PropSignatureSigners] == signers {
		return nil
	} else {
		img.Properties = cloneProps(img.Properties)
	}
	img.Properties[PropSignatureStatus] = status
	if signers == "" {
		delete(img.Properties, PropSignatureSigners)
	} else {
		img.Properties[PropSignatureSigners] = signers
	}
	return nil
}

// statusRank orders statuses: an image shows the best verdict among its manifests.
var statusRank = map[string]int{SigUnsigned: 0, SigUntrusted: 1, SigInvalid: 2, SigVerified: 3}

// imageSignedRefs are the manifests of img whose verdicts count for it.
func imageSignedRefs(img Image) []string {
	refs := slices.Clone(img.SignedRefs)
	if img.Reference != "" && !slices.Contains(refs, img.Reference) {
		refs = append(refs, img.Reference)
	}
	return refs
}

func cloneProps(p map[string]string) map[string]string {
	out := make(map[string]string, len(p)+2)
	for k, v := range p {
		out[k] = v
	}
	return out
}

// summarize makes the verdict of results: verified when a signature verified, else invalid
// when one is broken, else untrusted when one exists, else unsigned. Signers are distinct:
// one key's signature repeated counts once.
func summarize(results []signing.Result, known map[string]KnownSignature) Verdict {
	v := Verdict{Status: SigUnsigned, Signers: []string{}, Results: results, Known: known}
	seen := map[string]bool{}
	for _, r := range results {
		if !r.Counted {
			continue
		}
		switch {
		case r.Verified:
			v.Status = SigVerified
			if !seen[r.Signer] {
				seen[r.Signer] = true
				v.Signers = append(v.Signers, r.Signer)
			}
		case r.Invalid && v.Status != SigVerified:
			v.Status = SigInvalid
		case v.Status == SigUnsigned:
			v.Status = SigUntrusted
		}
	}
	slices.Sort(v.Signers)
	return v
}

// ContentChanged is told of every manifest stored, deleted or untagged in repo: when it is
// signature content (a sha256-<hex>.sig tag, or a referrer), the verdict of what it signs
// is made again at once.
func (c *Catalog) ContentChanged(ctx context.Context, repo string, tags []string, subject digest.Digest) error {
	var subjects []digest.Digest
	if subject != "" {
		subjects = append(subjects, subject)
	}
	for _, t := range tags {
		if m := sigTagRE.FindStringSubmatch(t); m != nil {
			subjects = append(subjects, digest.NewDigestFromEncoded(digest.SHA256, m[1]))
		}
	}
	for _, s := range subjects {
		if err := c.RefreshSignatures(ctx, repo, s); err != nil {
			return err
		}
	}
	return nil
}

// RefreshSignatures verifies the signatures of manifest subject of repo against its
// project's policy and records the verdict on it and on the image it stands for.
func (c *Catalog) RefreshSignatures(ctx context.Context, repo string, subject digest.Digest) error {
	h := fnv.New32a()
	h.Write([]byte(repo + "@" + subject.String()))
	mu := &c.sigLocks[h.Sum32()%uint32(len(c.sigLocks))]
	mu.Lock()
	defer mu.Unlock()
	proj, err := c.policy.RepositoryProject(ctx, repo)
	if errors.Is(err, auth.ErrNotFound) {
		return nil // no project owns it (--auth none): no policy to verify against
	}
	if err != nil {
		return fmt.Errorf("signatures of %s@%s: %w", repo, subject, err)
	}
	pol, err := c.signingPolicy(ctx, proj.ID)
	if err != nil {
		return err
	}
	trust, err := signing.Compile(pol)
	if err != nil {
		return fmt.Errorf("signing policy of %s: %w", proj.ID, err)
	}
	sigs, artifacts, err := c.collectSignatures(ctx, repo, subject)
	if err != nil {
		return err
	}
	var prev Verdict
	err = c.meta.View(ctx, func(tx meta.Tx) error { return getJSONTx(tx, keyVerdict(repo, subject.String()), &prev) })
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("verdict of %s@%s: %w", repo, subject, err)
	}
	known := map[string]KnownSignature{}
	for k, v := range prev.Known {
		known[k] = v
	}
	results := make([]signing.Result, 0, len(sigs))
	for _, s := range sigs {
		r := trust.Verify(ctx, subject, s)
		if k, ok := known[r.SigID]; ok && r.Counted && !r.Verified && !r.Invalid && k.Payload != r.PayloadID {
			r.Invalid, r.Reason = true, "the signature of "+k.Signer+" is attached to a payload it did not sign: tampered"
		}
		if r.Verified && r.SigID != "" {
			known[r.SigID] = KnownSignature{Signer: r.Signer, Payload: r.PayloadID}
		}
		results = append(results, r)
	}
	v := summarize(results, known)
	return c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		for _, a := range artifacts {
			if err := tx.Put(keySigArtifact(repo, a.String()), []byte(subject.String())); err != nil {
				return err
			}
		}
		if err := putJSONTx(tx, keyVerdict(repo, subject.String()), v); err != nil {
			return err
		}
		if err := tx.SetAdd(keySigSubjects(proj.ID), repo+"@"+subject.String()); err != nil {
			return err
		}
		id, err := tx.Get(keyImageRef(repo, subject.String()))
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		img, err := getImage(tx, string(id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		old := img.clone()
		if !slices.Contains(img.SignedRefs, subject.String()) {
			img.SignedRefs = append(img.SignedRefs, subject.String())
		}
		return ev.put(tx, &old, img)
	})
}

func putJSONTx(tx meta.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}

// sigManifest is the part of a signature manifest read here.
type sigManifest struct {
	ArtifactType string `json:"artifactType"`
	Config       struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Layers []struct {
		MediaType   string            `json:"mediaType"`
		Digest      digest.Digest     `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"layers"`
}

// collectSignatures finds every signature of subject in repo: the layers of its .sig tag
// and of its signature referrers, bundles, and notation signatures. It returns the
// signature manifests' digests too.
func (c *Catalog) collectSignatures(ctx context.Context, repo string, subject digest.Digest) ([]signing.Signature, []digest.Digest, error) {
	var sigs []signing.Signature
	var artifacts []digest.Digest
	tag := "sha256-" + subject.Encoded() + ".sig"
	if subject.Algorithm() == digest.SHA256 {
		d, err := c.store.ResolveTag(ctx, repo, tag)
		switch {
		case err == nil:
			s, err := c.simpleSignatures(ctx, repo, d, signing.FormatTag)
			if err != nil {
				return nil, nil, err
			}
			sigs, artifacts = append(sigs, s...), append(artifacts, d)
		case !errors.Is(err, storage.ErrManifestUnknown):
			return nil, nil, fmt.Errorf("resolve %s in %s: %w", tag, repo, err)
		}
	}
	refs, err := c.store.Referrers(ctx, repo, subject)
	if err != nil {
		return nil, nil, fmt.Errorf("referrers of %s in %s: %w", subject, repo, err)
	}
	for _, rec := range refs {
		s, err := c.referrerSignatures(ctx, repo, rec.Digest)
		if err != nil {
			return nil, nil, err
		}
		sigs = append(sigs, s...)
	}
	return sigs, artifacts, nil
}

func (c *Catalog) readSigManifest(ctx context.Context, repo string, d digest.Digest) (sigManifest, error) {
	var m sigManifest
	_, content, err := c.store.GetManifest(ctx, repo, d)
	if err != nil {
		return m, fmt.Errorf("signature manifest %s: %w", d, err)
	}
	if err := json.Unmarshal(content, &m); err != nil {
		return m, fmt.Errorf("signature manifest %s: %w", d, err)
	}
	if len(m.Layers) > maxSignatureLayers {
		m.Layers = m.Layers[:maxSignatureLayers]
	}
	return m, nil
}

func (c *Catalog) simpleSignatures(ctx context.Context, repo string, d digest.Digest, format string) ([]signing.Signature, error) {
	m, err := c.readSigManifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	var out []signing.Signature
	for _, l := range m.Layers {
		if l.MediaType != mtSimpleSigning {
			continue
		}
		payload, err := c.readSmallBlob(ctx, repo, l.Digest)
		if err != nil {
			return nil, err
		}
		out = append(out, signing.Signature{Format: format, Artifact: d, Payload: payload,
			Signature:   l.Annotations["dev.cosignproject.cosign/signature"],
			Certificate: l.Annotations["dev.sigstore.cosign/certificate"], Chain: l.Annotations["dev.sigstore.cosign/chain"]})
	}
	return out, nil
}

func (c *Catalog) referrerSignatures(ctx context.Context, repo string, d digest.Digest) ([]signing.Signature, error) {
	m, err := c.readSigManifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	at := m.ArtifactType
	if at == "" {
		at = m.Config.MediaType
	}
	switch at {
	case artifactCosignSig:
		return c.simpleSignatures(ctx, repo, d, signing.FormatReferrer)
	case artifactNotation:
		return []signing.Signature{{Format: signing.FormatNotation, Artifact: d}}, nil
	case artifactBundle:
		var out []signing.Signature
		for _, l := range m.Layers {
			if l.MediaType != artifactBundle {
				continue
			}
			b, err := c.readSmallBlob(ctx, repo, l.Digest)
			if err != nil {
				return nil, err
			}
			out = append(out, signing.Signature{Format: signing.FormatBundle, Artifact: d, Payload: b})
		}
		return out, nil
	}
	return nil, nil
}

func (c *Catalog) readSmallBlob(ctx context.Context, repo string, d digest.Digest) ([]byte, error) {
	f, size, err := c.store.OpenBlob(ctx, repo, d)
	if err != nil {
		return nil, fmt.Errorf("signature blob %s: %w", d, err)
	}
	defer f.Close()
	if size > maxSignatureBlob {
		return nil, fmt.Errorf("signature blob %s: %d bytes, more than %d", d, size, maxSignatureBlob)
	}
	return io.ReadAll(io.LimitReader(f, maxSignatureBlob))
}

// signingPolicy returns a project's policy; a project without one is off and trusts nothing.
func (c *Catalog) signingPolicy(ctx context.Context, project string) (signing.Policy, error) {
	p := signing.Policy{Mode: signing.ModeOff, Keys: []signing.Key{}, Authorities: []signing.Authority{}}
	err := c.meta.View(ctx, func(tx meta.Tx) error { return getJSONTx(tx, keySigningPolicy(project), &p) })
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return p, fmt.Errorf("signing policy of %s: %w", project, err)
	}
	return p, nil
}

// SigningPolicy returns project's signing policy, for a caller the policy lets read it.
func (c *Catalog) SigningPolicy(ctx context.Context, pr auth.Principal, project string) (signing.Policy, error) {
	if err := c.checkSigningPolicy(ctx, pr, project, false); err != nil {
		return signing.Policy{}, err
	}
	return c.signingPolicy(ctx, project)
}

// SetSigningPolicy validates and stores project's signing policy, then re-verifies the
// project's signed manifests in the background.
func (c *Catalog) SetSigningPolicy(ctx context.Context, pr auth.Principal, project string, p signing.Policy) (signing.Policy, error) {
	if err := c.checkSigningPolicy(ctx, pr, project, true); err != nil {
		return signing.Policy{}, err
	}
	if p.Keys == nil {
		p.Keys = []signing.Key{}
	}
	if p.Authorities == nil {
		p.Authorities = []signing.Authority{}
	}
	if _, err := signing.Compile(p); err != nil {
		return signing.Policy{}, errorf(BadRequest, "invalid signing policy: %v", err)
	}
	err := c.meta.Update(ctx, func(tx meta.Tx) error {
		if err := putJSONTx(tx, keySigningPolicy(project), p); err != nil {
			return err
		}
		return tx.Put(keySigningMode(project), []byte(p.Mode))
	})
	if err != nil {
		return signing.Policy{}, fmt.Errorf("store signing policy of %s: %w", project, err)
	}
	c.reverify(project)
	return p, nil
}

// DeleteSigningPolicy removes project's policy (back to off, trusting nothing).
func (c *Catalog) DeleteSigningPolicy(ctx context.Context, pr auth.Principal, project string) error {
	if err := c.checkSigningPolicy(ctx, pr, project, true); err != nil {
		return err
	}
	err := c.meta.Update(ctx, func(tx meta.Tx) error {
		if err := tx.Delete(keySigningPolicy(project)); err != nil {
			return err
		}
		return tx.Delete(keySigningMode(project))
	})
	if err != nil {
		return fmt.Errorf("delete signing policy of %s: %w", project, err)
	}
	c.reverify(project)
	return nil
}

func (c *Catalog) checkSigningPolicy(ctx context.Context, pr auth.Principal, project string, write bool) error {
	ok, err := c.policy.AllowSigningPolicy(ctx, pr, project, write)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return errorf(NotFound, "no project %s", project)
	case err != nil:
		return err
	case !ok:
		return errorf(Forbidden, "you may not %s the signing policy of project %s", map[bool]string{true: "change", false: "read"}[write], project)
	}
	return nil
}

// reverify makes every verdict of project again under its new policy, in the background:
// seconds for a project's signed manifests, and the pull path reads only the result.
func (c *Catalog) reverify(project string) {
	c.sigWork.Add(1)
	go func() {
		defer c.sigWork.Done()
		ctx := context.Background()
		var subjects []string
		err := c.meta.View(ctx, func(tx meta.Tx) (err error) {
			subjects, err = tx.SetRange(keySigSubjects(project), "", 0)
			return err
		})
		if err != nil {
			c.Log.Error("re-verify signatures", "project", project, "err", err)
			return
		}
		for _, s := range subjects {
			repo, d, _ := strings.Cut(s, "@")
			if err := c.RefreshSignatures(ctx, repo, digest.Digest(d)); err != nil {
				c.Log.Error("re-verify signatures", "project", project, "manifest", s, "err", err)
			}
		}
		c.Log.Info("signatures re-verified", "project", project, "manifests", len(subjects))
	}()
}

// WaitSignatures waits for background re-verification to finish (tests, shutdown).
func (c *Catalog) WaitSignatures() { c.sigWork.Wait() }

// Signatures lists every signature found for image id, verified or not, with the reason.
func (c *Catalog) Signatures(ctx context.Context, pr auth.Principal, id string) ([]signing.Result, error) {
	img, err := c.Get(ctx, pr, id)
	if err != nil {
		return nil, err
	}
	out := []signing.Result{}
	if img.Repository == "" {
		return out, nil
	}
	err = c.meta.View(ctx, func(tx meta.Tx) error {
		out = out[:0]
		for _, ref := range imageSignedRefs(img) {
			var v Verdict
			err := getJSONTx(tx, keyVerdict(img.Repository, ref), &v)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, v.Results...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", id, err)
	}
	return out, nil
}

// SigningMode returns project's enforcement mode: one read, on every pull.
func (f *Facts) SigningMode(ctx context.Context, project string) (string, error) {
	mode := signing.ModeOff
	err := f.store.Meta().View(ctx, func(tx meta.Tx) error {
		b, err := tx.Get(keySigningMode(project))
		if err == nil {
			mode = string(b)
		}
		return err
	})
	if errors.Is(err, meta.ErrNotFound) {
		err = nil
	}
	return mode, err
}

// ManifestSignature says what a manifest that is no image's part has proven: its verdict's
// status (or that of an index holding it), or exempt when it is signature content itself.
func (f *Facts) ManifestSignature(ctx context.Context, repo string, d digest.Digest) (status string, exempt bool, err error) {
	status = SigUnsigned
	holders, err := f.store.Holders(ctx, repo, d)
	if err != nil {
		return "", false, err
	}
	tags, err := f.store.ManifestTags(ctx, repo, d)
	if err != nil {
		return "", false, err
	}
	if slices.ContainsFunc(tags, signatureArtifactTagRE.MatchString) {
		return "", true, nil
	}
	err = f.store.Meta().View(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keySigArtifact(repo, d.String())); err == nil {
			exempt = true
			return nil
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		for _, m := range append([]digest.Digest{d}, holders...) {
			var v Verdict
			err := getJSONTx(tx, keyVerdict(repo, m.String()), &v)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if status = v.Status; status == SigVerified {
				return nil
			}
		}
		return nil
	})
	return status, exempt, err
}
