package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// signingTable is the signing verdicts as the catalog would give them: an in-memory
// SignatureFacts over maps.
type signingTable struct {
	modes    map[string]string
	statuses map[digest.Digest]string
}

func (s signingTable) SigningMode(_ context.Context, project string) (string, error) {
	if m, ok := s.modes[project]; ok {
		return m, nil
	}
	return "off", nil
}

func (s signingTable) ManifestSignature(_ context.Context, _ string, d digest.Digest) (string, bool, error) {
	if d == dSignature {
		return "", true, nil
	}
	if st, ok := s.statuses[d]; ok {
		return st, false, nil
	}
	return "unsigned", false, nil
}

// TestSigningRule: under enforce, a GET of a public image of project a that is not verified
// is refused with the reason to callers who may not push there, and its blobs with it; warn
// lets it through with a warning; signature content, admins, and callers who may push (also
// with a pull-only registry token) pass; verified content passes everyone who may read it.
func TestSigningRule(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := context.Background()
	for _, mode := range []string{"off", "warn", "enforce"} {
		for _, status := range []string{"unsigned", "untrusted", "invalid", "verified"} {
			img := ImageFacts{Owner: w.project["a"], Visibility: "public", Status: "active", Repository: "a/img", Signature: status}
			p := w.policy(img)
			p.Signatures = signingTable{modes: map[string]string{w.project["a"]: mode},
				statuses: map[digest.Digest]string{dPlain: status}}
			for _, caller := range []string{"anonymous", "reader", "other project", "member", "manager", "token for a/img", "admin"} {
				pr := w.principl[caller]
				mayPush := caller == "member" || caller == "manager" || caller == "token for a/img" || caller == "admin"
				for _, d := range []digest.Digest{dImage, dPlain} {
					if d == dPlain && (caller == "anonymous" || caller == "other project") {
						continue // project content is its readers' only
					}
					pull, err := p.PullManifest(ctx, pr, "a/img", d)
					if err != nil {
						t.Fatal(err)
					}
					denied := mode == "enforce" && status != "verified" && !mayPush
					warned := mode == "warn" && status != "verified" && !mayPush
					if (pull.Denied != "") != denied || (pull.Warning != "") != warned ||
						(pull.Decision == Allowed) == denied {
						t.Errorf("%s %s, %s GET %s: %+v, want denied %v warned %v", mode, status, caller, d, pull, denied, warned)
					}
					if denied && !strings.Contains(pull.Denied, status) {
						t.Errorf("refusal %q does not name the status %s", pull.Denied, status)
					}
				}
				// The disk blob goes with its image; the signature passes whatever the mode.
				blob, err := p.PullBlob(ctx, pr, "a/img", bDisk)
				if err != nil {
					t.Fatal(err)
				}
				if denied := mode == "enforce" && status != "verified" && !mayPush; (blob.Denied != "") != denied {
					t.Errorf("%s %s, %s GET disk blob: %+v, want denied %v", mode, status, caller, blob, denied)
				}
				if sig, err := p.PullManifest(ctx, pr, "a/img", dSignature); err != nil || sig.Denied != "" || sig.Warning != "" {
					t.Errorf("%s %s, %s GET signature: %+v %v, want allowed", mode, status, caller, sig, err)
				}
			}
		}
	}
}

// BenchmarkPullManifest: the cost of the signing rule on a GET of a verified image, off
// against enforce (the rule reads the mode and the image's status, no crypto).
func BenchmarkPullManifest(b *testing.B) {
	w := newPolicyWorld(b)
	img := ImageFacts{Owner: w.project["a"], Visibility: "private", Status: "active", Repository: "a/img", Signature: "verified"}
	for _, mode := range []string{"off", "enforce"} {
		b.Run(mode, func(b *testing.B) {
			p := w.policy(img)
			p.Signatures = signingTable{modes: map[string]string{w.project["a"]: mode}}
			pr := w.principl["reader"]
			for b.Loop() {
				if pull, err := p.PullManifest(context.Background(), pr, "a/img", dImage); err != nil || pull.Decision != Allowed {
					b.Fatal(pull, err)
				}
			}
		})
	}
}
