package auth

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// contentTable is registry content as the catalog would describe it: an in-memory
// ContentFacts (a real implementation of the interface over a map, not a mock of a part).
type contentTable struct {
	manifests map[digest.Digest]Content
	holders   map[digest.Digest][]digest.Digest
	images    []ImageFacts
}

func (c contentTable) Manifest(_ context.Context, _ string, d digest.Digest) (Content, error) {
	return c.manifests[d], nil
}

func (c contentTable) BlobHolders(_ context.Context, _ string, d digest.Digest) ([]digest.Digest, error) {
	return c.holders[d], nil
}

func (c contentTable) RepositoryImages(context.Context, string) ([]ImageFacts, error) {
	return c.images, nil
}

// policyWorld is an embedded identity with projects a (the images' owner), b (the member
// project of shared images), c, and one principal of every kind the policy meets.
type policyWorld struct {
	id       *Identity
	project  map[string]string
	callers  []string
	principl map[string]Principal
}

func newPolicyWorld(t testing.TB) *policyWorld {
	t.Helper()
	m, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx := context.Background()
	w := &policyWorld{id: NewIdentity(m), project: map[string]string{}, principl: map[string]Principal{}}
	for _, p := range []string{"a", "b", "c"} {
		proj, err := w.id.CreateProject(ctx, Project{Name: p, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		w.project[p] = proj.ID
	}
	user := func(name string, grants map[string]Role) User {
		u, err := w.id.CreateUser(ctx, User{Name: name, Enabled: true}, name+"-pw")
		if err != nil {
			t.Fatal(err)
		}
		for p, r := range grants {
			if err := w.id.Grant(ctx, u.ID, w.project[p], r); err != nil {
				t.Fatal(err)
			}
		}
		return u
	}
	unscoped := func(u User) Principal { return Principal{UserID: u.ID, UserName: u.Name} }
	multi := user("multi", map[string]Role{"a": RoleMember, "b": RoleMember})
	kinds := []struct {
		name string
		pr   Principal
	}{
		{"anonymous", Anonymous},
		{"reader", unscoped(user("reader", map[string]Role{"a": RoleReader}))},
		{"member", unscoped(user("member", map[string]Role{"a": RoleMember}))},
		{"manager", unscoped(user("manager", map[string]Role{"a": RoleManager}))},
		{"other project", unscoped(user("other", map[string]Role{"b": RoleMember}))},
		{"stranger", unscoped(user("stranger", map[string]Role{"c": RoleMember}))},
		// A Keystone token scoped to b, of a user who is also a member of a.
		{"scoped to b", Principal{UserID: multi.ID, UserName: "multi", Scoped: true, ProjectID: w.project["b"], ScopedRoles: []Role{RoleMember}}},
		// Registry tokens of the same user: one for b/x only, one for a/img.
		{"token for b/x", Principal{UserID: multi.ID, UserName: "multi", Bounded: true, Grants: []Access{{Type: "repository", Name: "b/x", Actions: []string{"pull", "push"}}}}},
		{"token for a/img", Principal{UserID: multi.ID, UserName: "multi", Bounded: true, Grants: []Access{{Type: "repository", Name: "a/img", Actions: []string{"pull"}}}}},
		{"admin", Principal{UserID: "admin-id", UserName: "admin", Admin: true}},
	}
	for _, k := range kinds {
		w.callers = append(w.callers, k.name)
		w.principl[k.name] = k.pr
	}
	return w
}

// Digests of the content in a/img: the image's manifest, a signature of it, a plain
// manifest of the project, and blobs held by each or by nothing.
var (
	dImage     = digest.FromString("image manifest")
	dSignature = digest.FromString("signature")
	dPlain     = digest.FromString("plain manifest")
	bDisk      = digest.FromString("disk")
	bShared    = digest.FromString("layer in both")
	bPlain     = digest.FromString("plain layer")
	bLoose     = digest.FromString("loose blob")
)

func (w *policyWorld) policy(img ImageFacts) *Policy {
	return &Policy{Directory: w.id, AnonymousPull: true, Content: contentTable{
		manifests: map[digest.Digest]Content{
			dImage:     {Kind: ImageContent, Image: img},
			dSignature: {Kind: ReferrerContent, Image: img},
		},
		holders: map[digest.Digest][]digest.Digest{
			bDisk: {dImage}, bShared: {dPlain, dImage}, bPlain: {dPlain},
		},
		images: []ImageFacts{img},
	}}
}

// TestPolicyMatrix asserts the decision of every caller kind (in the order of
// newPolicyWorld: anonymous, reader, member, manager, other project, stranger, scoped to b,
// token for b/x, token for a/img, admin) on an image of project a, for every visibility,
// membership of b, state and action. (Admins, as in Glance, list every project's images but
// community images of others unless asked for.) y/n: allowed or not; A/R/H: allowed, refused (the
// caller may see the image), hidden (answers as missing).
func TestPolicyMatrix(t *testing.T) {
	w := newPolicyWorld(t)
	type cells struct {
		get, download, modify, publicize, addMember, list, read, referrer string
	}
	type row struct {
		visibility, member, status string
		want                       cells
	}
	var rows []row
	for _, v := range []struct {
		visibility, member string
		active             cells
	}{
		{"private", "", cells{"nyyynnnnyy", "nyyynnnnyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "nyyynnnnny", "HAAAHHHHAA", "HAAAHHHHAA"}},
		{"shared", "pending", cells{"nyyyynynyy", "nyyyynynyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "nyyynnnnny", "HAAAAHAHAA", "HAAAAHAHAA"}},
		{"shared", "accepted", cells{"nyyyynynyy", "nyyyynynyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "nyyyynynny", "HAAAAHAHAA", "HAAAAHAHAA"}},
		{"shared", "rejected", cells{"nyyyynynyy", "nyyyynynyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "nyyynnnnny", "HAAAAHAHAA", "HAAAAHAHAA"}},
		{"community", "", cells{"nyyyyyynyy", "nyyyyyynyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "nyyynnnnnn", "HAAAAAAHAA", "HAAAAAAHAA"}},
		{"public", "", cells{"yyyyyyynyy", "yyyyyyynyy", "nnyynnnnny", "nnnnnnnnny", "nnyynnnnny", "yyyyyyynny", "AAAAAAAHAA", "AAAAAAAHAA"}},
	} {
		rows = append(rows, row{v.visibility, v.member, "active", v.active})
		// Deactivated: only admins download or pull; who may see the image is told so.
		deact := v.active
		deact.download = "nnnnnnnnny"
		deact.read = map[string]string{
			"private": "HRRRHHHHRA", "shared": "HRRRRHRHRA", "community": "HRRRRRRHRA", "public": "RRRRRRRHRA",
		}[v.visibility]
		rows = append(rows, row{v.visibility, v.member, "deactivated", deact})
		// Killed: never listed; the rest as active (a killed image has no content).
		killed := v.active
		killed.list = "nnnnnnnnnn"
		rows = append(rows, row{v.visibility, v.member, "killed", killed})
		// Deleted: its content is gone for everyone; the catalog answers the rest.
		deleted := killed
		deleted.read, deleted.referrer = "HHHHHHHHHA", "HHHHHHHHHA"
		rows = append(rows, row{v.visibility, v.member, "deleted", deleted})
	}
	ctx := context.Background()
	for _, r := range rows {
		img := ImageFacts{Owner: w.project["a"], Visibility: r.visibility, Status: r.status, Repository: "a/img"}
		if r.member != "" {
			img.Members = map[string]string{w.project["b"]: r.member}
		}
		p := w.policy(img)
		name := fmt.Sprintf("%s/%s/%s", r.visibility, r.member, r.status)
		yes := func(ok bool, err error) string {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return map[bool]string{true: "y", false: "n"}[ok]
		}
		dec := func(d Decision, err error) string {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return [...]string{Hidden: "H", Refused: "R", Allowed: "A"}[d]
		}
		image := func(act ImageAction, member string) func(Principal) string {
			return func(pr Principal) string { return yes(p.AllowImage(ctx, pr, img, act, member)) }
		}
		actions := []struct {
			name string
			want string
			ask  func(Principal) string
		}{
			{"get", r.want.get, image(ImageGet, "")},
			{"download", r.want.download, image(ImageDownload, "")},
			{"modify", r.want.modify, image(ImageModify, "")},
			{"publicize", r.want.publicize, image(ImagePublicize, "")},
			// The node's image cache API: admins only, like publicize (glance/policies/cache.py).
			{"cache_list", r.want.publicize, image(ImageCacheList, "")},
			{"cache_image", r.want.publicize, image(ImageCacheImage, "")},
			{"cache_delete", r.want.publicize, image(ImageCacheDelete, "")},
			{"add member", r.want.addMember, image(ImageAddMember, "")},
			{"delete", r.want.modify, image(ImageDelete, "")}, // a pull token deletes nothing
			{"list", r.want.list, func(pr Principal) string {
				projects, err := p.Projects(ctx, pr)
				return yes(p.ListImage(pr, projects, img, ImageListing{MemberStatus: "accepted"}), err)
			}},
			{"registry read", r.want.read, func(pr Principal) string { return dec(p.ReadManifest(ctx, pr, "a/img", dImage)) }},
			{"disk blob", r.want.read, func(pr Principal) string { return dec(p.ReadBlob(ctx, pr, "a/img", bDisk)) }},
			{"referrer", r.want.referrer, func(pr Principal) string { return dec(p.ReadManifest(ctx, pr, "a/img", dSignature)) }},
		}
		for _, a := range actions {
			got := ""
			for _, c := range w.callers {
				got += a.ask(w.principl[c])
			}
			if got != a.want {
				t.Errorf("%s %s: got %s, want %s (callers %v)", name, a.name, got, a.want, w.callers)
			}
		}
	}
}

// TestPolicyProjectContent: content that is no image's follows the project's readers; a
// blob is readable through the best of its holders; a blob nothing holds is the project's.
func TestPolicyProjectContent(t *testing.T) {
	w := newPolicyWorld(t)
	ctx := context.Background()
	private := w.policy(ImageFacts{Owner: w.project["a"], Visibility: "private", Status: "active"})
	public := w.policy(ImageFacts{Owner: w.project["a"], Visibility: "public", Status: "active"})
	cases := []struct {
		name string
		p    *Policy
		ask  func(p *Policy, pr Principal) (Decision, error)
		want string
	}{
		{"plain manifest", public, func(p *Policy, pr Principal) (Decision, error) { return p.ReadManifest(ctx, pr, "a/img", dPlain) }, "HAAAHHHHAA"},
		{"plain layer", public, func(p *Policy, pr Principal) (Decision, error) { return p.ReadBlob(ctx, pr, "a/img", bPlain) }, "HAAAHHHHAA"},
		{"loose blob", public, func(p *Policy, pr Principal) (Decision, error) { return p.ReadBlob(ctx, pr, "a/img", bLoose) }, "HAAAHHHHAA"},
		{"layer of a public image and a plain manifest", public, func(p *Policy, pr Principal) (Decision, error) { return p.ReadBlob(ctx, pr, "a/img", bShared) }, "AAAAAAAHAA"},
		{"layer of a private image and a plain manifest", private, func(p *Policy, pr Principal) (Decision, error) { return p.ReadBlob(ctx, pr, "a/img", bShared) }, "HAAAHHHHAA"},
		{"another repository of the project", public, func(p *Policy, pr Principal) (Decision, error) { return p.ReadManifest(ctx, pr, "a/other", dPlain) }, "HAAAHHHHHA"},
	}
	for _, c := range cases {
		got := ""
		for _, name := range w.callers {
			d, err := c.ask(c.p, w.principl[name])
			if err != nil {
				t.Fatal(err)
			}
			got += [...]string{Hidden: "H", Refused: "R", Allowed: "A"}[d]
		}
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	// Repository-level questions: who may pull from, push to and list a/img and b/x.
	for _, c := range []struct {
		p          *Policy
		repo       string
		act        Action
		want, list string
	}{
		{private, "a/img", ActionPull, "nyyynnnnyy", "nyyynnnyyy"},
		{public, "a/img", ActionPull, "yyyyyyynyy", "yyyyyyyyyy"},
		{public, "a/img", ActionPush, "nnyynnnnny", ""},
		{public, "b/x", ActionPush, "nnnnynyyny", ""},
	} {
		got, listed := "", ""
		for _, name := range w.callers {
			pr := w.principl[name]
			ok, err := c.p.AllowRepository(ctx, pr, c.repo, c.act)
			if err != nil {
				t.Fatal(err)
			}
			got += map[bool]string{true: "y", false: "n"}[ok]
			if c.list != "" {
				ok, err := c.p.ListRepository(ctx, pr, c.repo)
				if err != nil {
					t.Fatal(err)
				}
				listed += map[bool]string{true: "y", false: "n"}[ok]
			}
		}
		if got != c.want || listed != c.list {
			t.Errorf("%s on %s: got %s (listed %s), want %s (listed %s)", c.act, c.repo, got, listed, c.want, c.list)
		}
	}
	// A registry token deletes an image (its manifest) only with delete granted on the
	// image's repository, and then only as far as its user may.
	img := ImageFacts{Owner: w.project["a"], Visibility: "private", Status: "active", Repository: "a/img"}
	for _, c := range []struct {
		user, repo string
		want       bool
	}{{"multi", "a/img", true}, {"multi", "a/other", false}, {"other", "a/img", false}} {
		u, err := w.id.UserByName(ctx, c.user)
		if err != nil {
			t.Fatal(err)
		}
		pr := Principal{UserID: u.ID, Bounded: true, Grants: []Access{{Type: "repository", Name: c.repo, Actions: []string{"delete"}}}}
		if ok, err := private.AllowImage(ctx, pr, img, ImageDelete, ""); err != nil || ok != c.want {
			t.Errorf("%s with delete on %s: %v %v, want %v", c.user, c.repo, ok, err, c.want)
		}
	}
}
