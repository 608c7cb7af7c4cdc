package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// mixedRepo is a/golden holding, side by side: a public image, a private image of the same
// name, a staged upload of a third, a plain container image of project a, a referrer of
// each image, and a blob no manifest holds (as a refused push leaves).
type mixedRepo struct {
	public, private           catalog.Image
	publicDisk, privateDisk   string
	stagedDisk, looseBlob     string
	toolManifest, toolLayer   string
	publicSig, privateSig     string
	publicIndex, privateIndex string
}

func (s *secured) seedMixed(t *testing.T) mixedRepo {
	t.Helper()
	ctx := context.Background()
	memberA := s.scoped(t, "member-a", "a")
	admin := s.scoped(t, "admin", "admin")
	name, raw, bare := "Golden", "raw", "bare"
	var m mixedRepo
	create := func(pr auth.Principal, vis catalog.Visibility, disk []byte) catalog.Image {
		img, err := s.catalog.Create(ctx, pr, catalog.NewImage{Name: &name, DiskFormat: &raw, ContainerFormat: &bare, Owner: memberA.ProjectID, Visibility: vis})
		if err != nil {
			t.Fatal(err)
		}
		if disk == nil {
			return img
		}
		if img, err = s.catalog.Upload(ctx, pr, img.ID, bytes.NewReader(disk), int64(len(disk))); err != nil {
			t.Fatal(err)
		}
		if img.Repository != "a/golden" {
			t.Fatalf("repository %q", img.Repository)
		}
		return img
	}
	m.public = create(admin, catalog.VisibilityPublic, bytes.Repeat([]byte("pub!"), 4096))
	m.private = create(memberA, catalog.VisibilityPrivate, bytes.Repeat([]byte("priv"), 4096))
	m.publicDisk, m.privateDisk = "sha256:"+*m.public.HashValue, "sha256:"+*m.private.HashValue
	m.publicIndex, m.privateIndex = m.public.Reference, m.private.Reference
	staged := create(memberA, catalog.VisibilityPrivate, nil)
	stagedBytes := bytes.Repeat([]byte("stag"), 4096)
	if _, err := s.catalog.Stage(ctx, memberA, staged.ID, bytes.NewReader(stagedBytes), int64(len(stagedBytes))); err != nil {
		t.Fatal(err)
	}
	m.stagedDisk = fmt.Sprintf("sha256:%x", sha256Sum(stagedBytes))

	hdr := s.as("member-a")
	m.looseBlob = s.pushBlobAs("a/golden", []byte("pushed, but its manifest was refused"), hdr)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"tool":true}`)
	cd := s.pushBlobAs("a/golden", cfg, hdr)
	m.toolLayer = s.pushBlobAs("a/golden", []byte("private tool layer"), hdr)
	m.toolManifest = s.putManifestAs(t, "a/golden", "tool", hdr, map[string]any{
		"config": map[string]any{"mediaType": v1.MediaTypeImageConfig, "digest": cd, "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": m.toolLayer, "size": 18}},
	})
	sign := func(index string) string {
		_, ib := s.do("GET", "/v2/a/golden/manifests/"+index, nil, append(s.as("admin"), "Accept", v1.MediaTypeImageIndex)...)
		sig := s.pushBlobAs("a/golden", []byte("signature of "+index), hdr)
		return s.putManifestAs(t, "a/golden", "", hdr, map[string]any{
			"artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
			"config":       map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
			"layers":       []any{map[string]any{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sig, "size": len("signature of " + index)}},
			"subject":      map[string]any{"mediaType": v1.MediaTypeImageIndex, "digest": index, "size": len(ib)},
		})
	}
	s.pushBlobAs("a/golden", []byte("{}"), hdr)
	m.publicSig, m.privateSig = sign(m.publicIndex), sign(m.privateIndex)
	return m
}

// putManifestAs puts an OCI image manifest with the given fields under tag (by digest when
// tag is empty) and returns its digest.
func (s *secured) putManifestAs(t *testing.T, repo, tag string, hdr []string, fields map[string]any) string {
	t.Helper()
	m := map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	d := fmt.Sprintf("sha256:%x", sha256Sum(b))
	if tag == "" {
		tag = d
	}
	resp, body := s.do("PUT", "/v2/"+repo+"/manifests/"+tag, b, append(hdr, "Content-Type", v1.MediaTypeImageManifest)...)
	s.expect(resp, body, 201, "")
	return d
}

// TestOneImageDoesNotOpenItsRepository: a public image makes its own content readable to
// other projects and to anonymous callers, and nothing else of its repository; what they
// may not read answers exactly as what does not exist.
func TestOneImageDoesNotOpenItsRepository(t *testing.T) {
	s := newSecured(t)
	s.policy.AnonymousPull = true
	m := s.seedMixed(t)
	missingManifest := "sha256:" + strings.Repeat("5", 64)
	missingBlob := "sha256:" + strings.Repeat("6", 64)
	type read struct {
		what, path string
		public     bool // readable by other projects and anonymous callers
	}
	reads := []read{
		{"public image by id tag", "/v2/a/golden/manifests/" + m.public.ID, true},
		{"public image index", "/v2/a/golden/manifests/" + m.publicIndex, true},
		{"public disk", "/v2/a/golden/blobs/" + m.publicDisk, true},
		{"signature of the public image", "/v2/a/golden/manifests/" + m.publicSig, true},
		{"private image by id tag", "/v2/a/golden/manifests/" + m.private.ID, false},
		{"private image index", "/v2/a/golden/manifests/" + m.privateIndex, false},
		{"private disk", "/v2/a/golden/blobs/" + m.privateDisk, false},
		{"signature of the private image", "/v2/a/golden/manifests/" + m.privateSig, false},
		{"staged data", "/v2/a/golden/blobs/" + m.stagedDisk, false},
		{"blob of a refused push", "/v2/a/golden/blobs/" + m.looseBlob, false},
		{"plain manifest", "/v2/a/golden/manifests/tool", false},
		{"plain layer", "/v2/a/golden/blobs/" + m.toolLayer, false},
	}
	missingBody := map[bool][]byte{}
	_, missingBody[false] = s.do("GET", "/v2/a/golden/manifests/"+missingManifest, nil, s.as("member-b")...)
	_, missingBody[true] = s.do("GET", "/v2/a/golden/blobs/"+missingBlob, nil, s.as("member-b")...)
	for _, user := range []string{"", "member-b", "reader-a"} {
		for _, rd := range reads {
			resp, body := s.do("GET", rd.path, nil, append(s.as(user), "Accept", v1.MediaTypeImageIndex+","+v1.MediaTypeImageManifest)...)
			want := 200
			if user != "reader-a" && !rd.public {
				want = 404
			}
			if resp.StatusCode != want {
				t.Errorf("%s as %q: %d, want %d (%s)", rd.what, user, resp.StatusCode, want, body)
				continue
			}
			if want == 404 {
				isBlob := strings.Contains(rd.path, "/blobs/")
				if !bytes.Equal(body, missingBody[isBlob]) {
					t.Errorf("%s as %q: hidden answers %s, missing answers %s", rd.what, user, body, missingBody[isBlob])
				}
			}
		}
	}
	// Tags: others see the public image's tag only, and no Link to hidden ones.
	for _, c := range []struct {
		user, query, want string
		link              bool
	}{
		{"member-b", "", `[` + q(m.public.ID) + `]`, false},
		{"", "?n=1", `[` + q(m.public.ID) + `]`, false},
		{"member-b", "?n=1", `[` + q(m.public.ID) + `]`, false},
		{"reader-a", "?n=1", `[` + q(first(m.public.ID, m.private.ID)) + `]`, true},
	} {
		resp, body := s.do("GET", "/v2/a/golden/tags/list"+c.query, nil, s.as(c.user)...)
		var tl struct{ Tags []string }
		json.Unmarshal(body, &tl)
		got, _ := json.Marshal(tl.Tags)
		if resp.StatusCode != 200 || string(got) != c.want || (resp.Header.Get("Link") != "") != c.link {
			t.Errorf("tags%s as %q: %d %s Link %q; want %s, link %v", c.query, c.user, resp.StatusCode, got, resp.Header.Get("Link"), c.want, c.link)
		}
	}
	// Referrers: the public image's signature is listed, the private one's is not.
	for _, c := range []struct {
		subject string
		want    int
	}{{m.publicIndex, 1}, {m.privateIndex, 0}} {
		_, body := s.do("GET", "/v2/a/golden/referrers/"+c.subject, nil, s.as("member-b")...)
		var idx v1.Index
		json.Unmarshal(body, &idx)
		if len(idx.Manifests) != c.want {
			t.Errorf("referrers of %s as member-b: %s", c.subject, body)
		}
	}
	// Mounts: what a GET would give.
	for _, c := range []struct {
		blob string
		want int
	}{{m.publicDisk, 201}, {m.privateDisk, 202}, {m.stagedDisk, 202}, {m.looseBlob, 202}, {m.toolLayer, 202}} {
		resp, body := s.do("POST", "/v2/b/copy/blobs/uploads/?mount="+c.blob+"&from=a/golden", nil, s.as("member-b")...)
		if resp.StatusCode != c.want {
			t.Errorf("mount %s into b as member-b: %d, want %d (%s)", c.blob, resp.StatusCode, c.want, body)
		}
	}
}

func q(s string) string { return `"` + s + `"` }

func first(a, b string) string { return min(a, b) }

// TestMountsFollowTheBlobAndTheToken: a mount source passes the same check as a GET of the
// blob from it, within the registry token's grants and its Keystone token's project scope.
func TestMountsFollowTheBlobAndTheToken(t *testing.T) {
	s := newSecured(t)
	m := s.seedMixed(t)
	ctx := context.Background()
	// member-ab is a member of both projects.
	ab, err := s.id.CreateUser(ctx, auth.User{Name: "member-ab", Enabled: true}, "member-ab-pw")
	if err != nil {
		t.Fatal(err)
	}
	s.users["member-ab"] = "member-ab-pw"
	for _, p := range []string{"a", "b"} {
		proj, _ := s.id.ProjectByName(ctx, p)
		if err := s.id.Grant(ctx, ab.ID, proj.ID, auth.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	mount := func(hdr []string, blob string) int {
		resp, _ := s.do("POST", "/v2/b/x/blobs/uploads/?mount="+blob+"&from=a/golden", nil, hdr...)
		return resp.StatusCode
	}
	// A token for b/x alone does not reach a's blobs, though its user could: the client is
	// sent for a token that also covers the source, as Distribution does.
	tok, _ := s.token("member-ab", "repository:b/x:pull,push")
	resp, _ := s.do("POST", "/v2/b/x/blobs/uploads/?mount="+m.toolLayer+"&from=a/golden", nil, bearer(tok)...)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 ||
		!strings.Contains(ch, `scope="repository:b/x:pull,push repository:a/golden:pull"`) || !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Errorf("mount with a token for b/x only: %d %q, want 401 asking for a/golden too", resp.StatusCode, ch)
	}
	// Without from, only repositories the token covers are searched: as if missing.
	if resp, _ := s.do("POST", "/v2/b/x/blobs/uploads/?mount="+m.toolLayer, nil, bearer(tok)...); resp.StatusCode != 202 {
		t.Errorf("mount without from, token for b/x only: %d, want 202", resp.StatusCode)
	}
	tok, _ = s.token("member-ab", "repository:b/x:pull,push%20repository:a/golden:pull")
	if got := mount(bearer(tok), m.toolLayer); got != 201 {
		t.Errorf("mount with a token for both: %d, want 201", got)
	}
	// A Keystone token scoped to b keeps its scope in the registry token: a/golden is
	// granted for its public image only, so a's plain layer stays out of reach.
	proj, _ := s.id.ProjectByName(ctx, "b")
	_, ks, err := s.id.IssueToken(ctx, ab, proj.ID, []string{"password"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := s.do("GET", "/token?service=xloud-image&scope=repository:b/x:pull,push%20repository:a/golden:pull", nil, "X-Auth-Token", ks)
	var tr struct{ Token string }
	json.Unmarshal(body, &tr)
	claims, err := s.signer.Verify(context.Background(), tr.Token)
	if resp.StatusCode != 200 || err != nil || claims.Project != proj.ID {
		t.Fatalf("token from a scoped Keystone token: %d %v %+v", resp.StatusCode, err, claims)
	}
	if got := mount(bearer(tr.Token), m.toolLayer); got != 202 {
		t.Errorf("mount of a's layer with b's scope: %d, want 202", got)
	}
	if got := mount(bearer(tr.Token), m.publicDisk); got != 201 {
		t.Errorf("mount of the public disk with b's scope: %d, want 201", got)
	}
	// A deactivated image's disk cannot be carried elsewhere by a member of its project.
	if err := s.catalog.Deactivate(ctx, s.scoped(t, "member-a", "a"), m.private.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = s.do("POST", "/v2/a/copy/blobs/uploads/?mount="+m.privateDisk+"&from=a/golden", nil, s.as("member-a")...)
	if resp.StatusCode != 202 {
		t.Errorf("mount of a deactivated disk: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("GET", "/v2/a/copy/blobs/"+m.privateDisk, nil, s.as("reader-a")...); resp.StatusCode != 404 {
		t.Errorf("deactivated disk readable through a copy: %d", resp.StatusCode)
	}
	// Whoever may see the deactivated image is told it is refused; others learn nothing.
	for user, want := range map[string]int{"member-a": 403, "member-b": 404, "admin": 200} {
		if resp, _ := s.do("GET", "/v2/a/golden/blobs/"+m.privateDisk, nil, s.as(user)...); resp.StatusCode != want {
			t.Errorf("deactivated disk as %s: %d, want %d", user, resp.StatusCode, want)
		}
	}
}
