package metadefs_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/metadefs"
	"github.com/xloud/xloud-image/storage/meta"
)

var ctx = context.Background()

// Principals: scoped tokens carry their roles, so the policy asks no directory.
var (
	admin    = auth.Principal{UserID: "admin", Scoped: true, ProjectID: "p-admin", ScopedRoles: []auth.Role{auth.RoleAdmin}, Admin: true}
	memberA  = auth.Principal{UserID: "ma", Scoped: true, ProjectID: "p-a", ScopedRoles: []auth.Role{auth.RoleMember}}
	readerB  = auth.Principal{UserID: "rb", Scoped: true, ProjectID: "p-b", ScopedRoles: []auth.Role{auth.RoleReader}}
	noRolesC = auth.Principal{UserID: "nc", Scoped: true, ProjectID: "p-c"}
)

// backends opens the definitions over each metadata backend: bbolt and a real redis-server.
func backends(t *testing.T) map[string]*metadefs.Store {
	t.Helper()
	b, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r, err := meta.OpenRedis(ctx, testenv.StartRedis(t), "test:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	out := map[string]*metadefs.Store{}
	for name, m := range map[string]meta.Store{"bolt": b, "redis": r} {
		s := metadefs.New(m, &auth.Policy{})
		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		s.Now = func() time.Time { // a second per call: creation order is list order
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		}
		out[name] = s
	}
	return out
}

func kind(err error) catalog.Kind { k, _ := catalog.KindOf(err); return k }

func mustKind(t *testing.T, what string, err error, want catalog.Kind) {
	t.Helper()
	if got := kind(err); got != want {
		t.Fatalf("%s: %v (kind %d), want kind %d", what, err, got, want)
	}
}

func decodeNS(t *testing.T, body string) metadefs.Namespace {
	t.Helper()
	ns, err := metadefs.DecodeNamespace([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestStoreContract(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("Namespaces", func(t *testing.T) { testNamespaces(t, s) })
			t.Run("Contents", func(t *testing.T) { testContents(t, s) })
			t.Run("Visibility", func(t *testing.T) { testVisibility(t, s) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrentTags(t, s) })
			t.Run("ShowCache", func(t *testing.T) { testShowCache(t, s) })
		})
	}
}

func testNamespaces(t *testing.T, s *metadefs.Store) {
	if _, err := s.Init(ctx); err != nil {
		t.Fatal(err)
	}
	rts, err := s.ResourceTypes(ctx, readerB)
	if err != nil || len(rts) < len(metadefs.SeededResourceTypes) {
		t.Fatalf("resource types %v, %v", rts, err)
	}
	_, err = s.CreateNamespace(ctx, memberA, decodeNS(t, `{"namespace":"x"}`))
	mustKind(t, "non-admin create", err, catalog.Forbidden)

	ns, err := s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"T::One","protected":true,"visibility":"public",
		"resource_type_associations":[{"name":"OS::Glance::Image","prefix":"t_"},{"name":"New::Type"}],
		"properties":{"p":{"title":"P","type":"integer","minimum":1}},
		"objects":[{"name":"O","properties":{"q":{"title":"Q","type":"string"}},"required":["q"]}],
		"tags":[{"name":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ns.Owner != admin.ProjectID || ns.CreatedAt.IsZero() || len(ns.Objects) != 1 || ns.Objects[0].CreatedAt.IsZero() {
		t.Fatalf("created %+v", ns)
	}
	_, err = s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"T::One"}`))
	mustKind(t, "duplicate", err, catalog.Conflict)
	rts, _ = s.ResourceTypes(ctx, admin)
	if !slices.ContainsFunc(rts, func(r metadefs.ResourceType) bool { return r.Name == "New::Type" }) {
		t.Fatalf("an association's unknown resource type is created: %v", rts)
	}
	got, err := s.GetNamespace(ctx, readerB, "T::One", "OS::Glance::Image")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Properties["t_p"]; !ok || got.Objects[0].Required[0] != "t_q" || got.Objects[0].Properties["t_q"].Title != "Q" {
		t.Fatalf("prefix not applied: %+v", got)
	}
	err = s.DeleteNamespace(ctx, admin, "T::One")
	mustKind(t, "protected delete", err, catalog.Forbidden)
	for _, what := range []string{metadefs.AllObjects, metadefs.AllProperties, metadefs.AllTags} {
		mustKind(t, "protected bulk delete "+what, s.DeleteAll(ctx, admin, "T::One", what), catalog.Forbidden)
	}
	mustKind(t, "non-admin delete", s.DeleteNamespace(ctx, readerB, "T::One"), catalog.Forbidden)

	// PUT replaces the namespace's own fields (omitted ones reset), and may rename it.
	up, err := s.UpdateNamespace(ctx, admin, "T::One", decodeNS(t, `{"namespace":"T::Two","visibility":"private","protected":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if up.Namespace != "T::Two" || up.Protected || up.Visibility != "private" || len(up.Objects) != 1 || up.Properties["p"].Title != "P" {
		t.Fatalf("updated %+v", up)
	}
	_, err = s.GetNamespace(ctx, admin, "T::One", "")
	mustKind(t, "old name after rename", err, catalog.NotFound)
	_, err = s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"T::Three"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateNamespace(ctx, admin, "T::Two", decodeNS(t, `{"namespace":"T::Three"}`))
	mustKind(t, "rename onto another", err, catalog.Conflict)

	// Lists: newest first by default, paged by marker, filtered.
	page, more, err := s.ListNamespaces(ctx, admin, metadefs.ListOptions{Limit: 1, ResourceTypes: []string{"New::Type"}})
	if err != nil || len(page) != 1 || page[0].Namespace != "T::Two" || !more || page[0].Properties != nil {
		t.Fatalf("filtered list %+v more=%v %v", page, more, err)
	}
	page, _, _ = s.ListNamespaces(ctx, admin, metadefs.ListOptions{SortKey: "created_at", SortDir: "desc"})
	if page[0].Namespace != "T::Three" || page[1].Namespace != "T::Two" {
		t.Fatalf("newest first: %v, %v", page[0].Namespace, page[1].Namespace)
	}
	next, _, err := s.ListNamespaces(ctx, admin, metadefs.ListOptions{Marker: "T::Three", Limit: 1})
	if err != nil || next[0].Namespace != "T::Two" {
		t.Fatalf("after marker: %+v %v", next, err)
	}
	_, _, err = s.ListNamespaces(ctx, admin, metadefs.ListOptions{Marker: "nope"})
	mustKind(t, "unknown marker", err, catalog.NotFound)
	_, _, err = s.ListNamespaces(ctx, admin, metadefs.ListOptions{SortKey: "owner"})
	mustKind(t, "bad sort key", err, catalog.BadRequest)
	priv, _, _ := s.ListNamespaces(ctx, admin, metadefs.ListOptions{Visibility: "private"})
	for _, ns := range priv {
		if ns.Visibility != "private" {
			t.Fatalf("visibility filter let %s through", ns.Namespace)
		}
	}
	if err := s.DeleteNamespace(ctx, admin, "T::Two"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetNamespace(ctx, admin, "T::Two", "")
	mustKind(t, "deleted", err, catalog.NotFound)
}

func testContents(t *testing.T, s *metadefs.Store) {
	const ns = "C::NS"
	if _, err := s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"C::NS","visibility":"public"}`)); err != nil {
		t.Fatal(err)
	}
	obj, _ := metadefs.DecodeObject([]byte(`{"name":"Obj","properties":{"x":{"title":"X","type":"boolean"}}}`))
	if _, err := s.CreateObject(ctx, admin, ns, obj); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateObject(ctx, admin, ns, obj)
	mustKind(t, "duplicate object", err, catalog.Conflict)
	_, err = s.CreateObject(ctx, readerB, ns, obj)
	mustKind(t, "reader creates object", err, catalog.Forbidden)
	obj.Name = "Renamed"
	if _, err := s.UpdateObject(ctx, admin, ns, "Obj", obj); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Object(ctx, readerB, ns, "Renamed"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Object(ctx, readerB, ns, "Obj")
	mustKind(t, "renamed away", err, catalog.NotFound)

	name, p, err := metadefs.DecodeProperty([]byte(`{"name":"size","title":"Size","type":"integer","maximum":10}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProperty(ctx, admin, ns, name, p); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateProperty(ctx, admin, ns, name, p)
	mustKind(t, "duplicate property", err, catalog.Conflict)
	if _, err := s.UpdateProperty(ctx, admin, ns, "size", "size2", p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Property(ctx, readerB, ns, "size2", "")
	if err != nil || got.Name != "size2" || *got.Maximum != 10 {
		t.Fatalf("property %+v %v", got, err)
	}

	tags, err := s.CreateTags(ctx, admin, ns, []string{"a", "b"}, false)
	if err != nil || len(tags) != 2 {
		t.Fatalf("tags %v %v", tags, err)
	}
	_, err = s.CreateTags(ctx, admin, ns, []string{"c", "A"}, true)
	mustKind(t, "append an existing tag (case-insensitive)", err, catalog.Conflict)
	if l, _ := s.Tags(ctx, admin, ns, metadefs.TagOptions{}); len(l) != 2 {
		t.Fatalf("a refused append changed the tags: %v", l)
	}
	if _, err := s.CreateTags(ctx, admin, ns, []string{"c"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTags(ctx, admin, ns, []string{"z"}, false); err != nil {
		t.Fatal(err)
	}
	l, _ := s.Tags(ctx, admin, ns, metadefs.TagOptions{SortKey: "name", SortDir: "asc"})
	if len(l) != 1 || l[0].Name != "z" {
		t.Fatalf("replace without append: %v", l)
	}
	if _, err := s.CreateTag(ctx, admin, ns, "y"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateTag(ctx, admin, ns, "Y")
	mustKind(t, "duplicate tag", err, catalog.Conflict)
	_, err = s.RenameTag(ctx, admin, ns, "y", "z")
	mustKind(t, "rename onto a tag", err, catalog.Conflict)
	if _, err := s.RenameTag(ctx, admin, ns, "y", "w"); err != nil {
		t.Fatal(err)
	}
	l, _ = s.Tags(ctx, admin, ns, metadefs.TagOptions{SortKey: "name", SortDir: "asc", Limit: 1, Marker: "w"})
	if len(l) != 1 || l[0].Name != "z" {
		t.Fatalf("tags after marker: %v", l)
	}

	a, _ := metadefs.DecodeAssociation([]byte(`{"name":"OS::Nova::Flavor","prefix":"hw:"}`))
	if _, err := s.Associate(ctx, admin, ns, a); err != nil {
		t.Fatal(err)
	}
	_, err = s.Associate(ctx, admin, ns, a)
	mustKind(t, "duplicate association", err, catalog.Conflict)
	if _, err := s.Property(ctx, readerB, ns, "hw:size2", "OS::Nova::Flavor"); err != nil {
		t.Fatalf("prefixed property: %v", err)
	}
	_, err = s.Property(ctx, readerB, ns, "size2", "OS::Nova::Flavor")
	mustKind(t, "unprefixed name under a prefixed type", err, catalog.NotFound)
	mustKind(t, "dissociate unknown type", s.Dissociate(ctx, admin, ns, "No::Such"), catalog.NotFound)
	if err := s.Dissociate(ctx, admin, ns, "OS::Nova::Flavor"); err != nil {
		t.Fatal(err)
	}
	mustKind(t, "dissociate twice", s.Dissociate(ctx, admin, ns, "OS::Nova::Flavor"), catalog.NotFound)

	// Protected blocks deletes only.
	if _, err := s.UpdateNamespace(ctx, admin, ns, decodeNS(t, `{"namespace":"C::NS","visibility":"public","protected":true}`)); err != nil {
		t.Fatal(err)
	}
	mustKind(t, "protected object", s.DeleteObject(ctx, admin, ns, "Renamed"), catalog.Forbidden)
	mustKind(t, "protected property", s.DeleteProperty(ctx, admin, ns, "size2"), catalog.Forbidden)
	mustKind(t, "protected tag", s.DeleteTag(ctx, admin, ns, "z"), catalog.Forbidden)
	if _, err := s.CreateTag(ctx, admin, ns, "allowed"); err != nil {
		t.Fatalf("adding to a protected namespace: %v", err)
	}
	if _, err := s.UpdateNamespace(ctx, admin, ns, decodeNS(t, `{"namespace":"C::NS","visibility":"public"}`)); err != nil {
		t.Fatal(err)
	}
	for _, del := range []error{s.DeleteObject(ctx, admin, ns, "Renamed"), s.DeleteProperty(ctx, admin, ns, "size2"), s.DeleteTag(ctx, admin, ns, "z")} {
		if del != nil {
			t.Fatal(del)
		}
	}
	mustKind(t, "object gone", s.DeleteObject(ctx, admin, ns, "Renamed"), catalog.NotFound)
	if err := s.DeleteAll(ctx, admin, ns, metadefs.AllTags); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Tags(ctx, admin, ns, metadefs.TagOptions{}); len(l) != 0 {
		t.Fatalf("tags after delete all: %v", l)
	}
}

func testVisibility(t *testing.T, s *metadefs.Store) {
	priv := decodeNS(t, `{"namespace":"V::PrivA","visibility":"private","owner":"p-a"}`)
	if _, err := s.CreateNamespace(ctx, admin, priv); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNamespace(ctx, memberA, "V::PrivA", ""); err != nil {
		t.Fatalf("owner's member reads: %v", err)
	}
	_, err := s.GetNamespace(ctx, readerB, "V::PrivA", "")
	mustKind(t, "other project's private namespace", err, catalog.NotFound)
	mustKind(t, "other project deletes it", s.DeleteNamespace(ctx, readerB, "V::PrivA"), catalog.NotFound)
	_, err = s.CreateTag(ctx, readerB, "V::PrivA", "t")
	mustKind(t, "other project tags it", err, catalog.NotFound)
	_, err = s.CreateTag(ctx, memberA, "V::PrivA", "t")
	mustKind(t, "owner's member writes", err, catalog.Forbidden)
	_, _, err = s.ListNamespaces(ctx, noRolesC, metadefs.ListOptions{})
	mustKind(t, "list without a role", err, catalog.Forbidden)
	list, _, err := s.ListNamespaces(ctx, readerB, metadefs.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(ns metadefs.Namespace) bool { return ns.Namespace == "V::PrivA" }) {
		t.Fatal("other project's private namespace listed")
	}
	list, _, _ = s.ListNamespaces(ctx, memberA, metadefs.ListOptions{})
	if !slices.ContainsFunc(list, func(ns metadefs.Namespace) bool { return ns.Namespace == "V::PrivA" }) {
		t.Fatal("own private namespace not listed")
	}
}

// testConcurrentTags: concurrent tag creations each land once, none lost (the store's
// transactions retry on conflict).
func testConcurrentTags(t *testing.T, s *metadefs.Store) {
	if _, err := s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"K::NS"}`)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateTag(ctx, admin, "K::NS", "t"+string(rune('a'+i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, meta.ErrConflict) {
			t.Fatal(err)
		}
	}
	l, _ := s.Tags(ctx, admin, "K::NS", metadefs.TagOptions{})
	if len(l) != 20 {
		t.Fatalf("%d tags after 20 concurrent creations", len(l))
	}
}

// testShowCache: a cached show still answers each caller by the policy, and a write is
// seen by the next show.
func testShowCache(t *testing.T, s *metadefs.Store) {
	if _, err := s.CreateNamespace(ctx, admin, decodeNS(t, `{"namespace":"S::Priv","owner":"p-a","display_name":"one"}`)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	enc := func(ns metadefs.Namespace) ([]byte, error) { calls++; return []byte(*ns.DisplayName), nil }
	for range 2 {
		if b, err := s.ShowNamespace(ctx, memberA, "S::Priv", "", enc); err != nil || string(b) != "one" {
			t.Fatalf("show: %q %v", b, err)
		}
	}
	if calls != 1 {
		t.Fatalf("encoded %d times for two shows of an unchanged namespace", calls)
	}
	_, err := s.ShowNamespace(ctx, readerB, "S::Priv", "", enc)
	mustKind(t, "cached private namespace for another project", err, catalog.NotFound)
	_, err = s.ShowNamespace(ctx, noRolesC, "S::Priv", "", enc)
	mustKind(t, "cached namespace for a caller without role", err, catalog.NotFound)
	if _, err := s.UpdateNamespace(ctx, admin, "S::Priv", decodeNS(t, `{"namespace":"S::Priv","visibility":"public","display_name":"two"}`)); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ShowNamespace(ctx, readerB, "S::Priv", "", enc); err != nil || string(b) != "two" {
		t.Fatalf("show after update: %q %v", b, err)
	}
	_, err = s.ShowNamespace(ctx, noRolesC, "S::Priv", "", enc)
	mustKind(t, "public namespace for a caller without role", err, catalog.Forbidden)
}
