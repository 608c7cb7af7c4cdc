package metadefs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/metadefs"
)

// TestShippedDefinitions: every shipped file parses, 33 namespaces as Glance ships them,
// among them those the issue names, with their counts.
func TestShippedDefinitions(t *testing.T) {
	defs, err := metadefs.ReadDefinitions(metadefs.Shipped())
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 33 {
		t.Fatalf("%d shipped namespaces, want 33", len(defs))
	}
	byName := map[string]metadefs.Namespace{}
	for _, d := range defs {
		byName[d.Namespace] = d
	}
	for name, props := range map[string]int{"OS::Compute::Libvirt": 5, "OS::Compute::Hypervisor": 2, "OS::Compute::LibvirtImage": 17, "OS::Glance::CommonImageProperties": 10} {
		if len(byName[name].Properties) != props {
			t.Errorf("%s: %d properties, want %d", name, len(byName[name].Properties), props)
		}
	}
	if n := len(byName["OS::Software::DBMS"].Objects); n != 12 {
		t.Errorf("OS::Software::DBMS: %d objects, want 12", n)
	}
	notice, err := fs.ReadFile(metadefs.Shipped(), "NOTICE")
	if err != nil || !strings.Contains(string(notice), "Apache License, Version 2.0") || !strings.Contains(string(notice), "openstack/glance") {
		t.Errorf("NOTICE names origin and licence: %q, %v", notice, err)
	}
}

// TestInitLoadsOnce: a first start loads the shipped definitions; a start after the
// operator deleted them all does not bring them back.
func TestInitLoadsOnce(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			n, err := s.Init(ctx)
			if err != nil || n != 33 {
				t.Fatalf("first init loaded %d: %v", n, err)
			}
			if n, err := s.Init(ctx); err != nil || n != 0 {
				t.Fatalf("second init loaded %d: %v", n, err)
			}
			ns, err := s.GetNamespace(ctx, readerB, "OS::Compute::Hypervisor", "")
			if err != nil || ns.Properties["hypervisor_type"].Enum == nil {
				t.Fatalf("shipped namespace %+v: %v", ns, err)
			}
			all, err := s.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range all {
				if _, err := s.UpdateNamespace(ctx, admin, ns.Namespace, decodeNS(t, `{"namespace":"`+ns.Namespace+`"}`)); err != nil {
					t.Fatal(err)
				}
				if err := s.DeleteNamespace(ctx, admin, ns.Namespace); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := s.Init(ctx); err != nil || n != 0 {
				t.Fatalf("init after deleting all loaded %d: %v", n, err)
			}
		})
	}
}

func files(m map[string]string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return out
}

// TestLoadModes: glance-manage db_load_metadefs semantics — existing namespaces are
// skipped by default, merged (existing values kept, or the file's with prefer-new), or
// overwritten.
func TestLoadModes(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			v1 := files(map[string]string{"a.json": `{"namespace":"L::A","display_name":"one","visibility":"public",
				"properties":{"p":{"title":"P1","type":"string"}},"tags":[{"name":"t1"}]}`})
			v2 := files(map[string]string{"a.json": `{"namespace":"L::A","display_name":"two","visibility":"public",
				"properties":{"p":{"title":"P2","type":"string"},"q":{"title":"Q","type":"integer"}},"tags":[{"name":"t2"}],
				"resource_type_associations":[{"name":"OS::Glance::Image","prefix":"l_"}]}`,
				"b.json": `{"namespace":"L::B"}`})
			load := func(dir fstest.MapFS, mode metadefs.Mode) metadefs.LoadReport {
				t.Helper()
				defs, err := metadefs.ReadDefinitions(dir)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := s.Load(ctx, defs, mode)
				if err != nil {
					t.Fatal(err)
				}
				return rep
			}
			get := func() metadefs.Namespace {
				ns, err := s.GetNamespace(ctx, admin, "L::A", "")
				if err != nil {
					t.Fatal(err)
				}
				return ns
			}
			if rep := load(v1, metadefs.Skip); len(rep.Created) != 1 {
				t.Fatalf("first load %+v", rep)
			}
			if rep := load(v2, metadefs.Skip); len(rep.Skipped) != 1 || len(rep.Created) != 1 {
				t.Fatalf("skip %+v", rep)
			}
			if ns := get(); *ns.DisplayName != "one" || len(ns.Properties) != 1 {
				t.Fatalf("skip changed the namespace: %+v", ns)
			}
			if rep := load(v2, metadefs.Merge); len(rep.Merged) != 2 {
				t.Fatalf("merge %+v", rep)
			}
			ns := get()
			if *ns.DisplayName != "one" || ns.Properties["p"].Title != "P1" || ns.Properties["q"].Title != "Q" || len(ns.Tags) != 2 || len(ns.Associations) != 1 {
				t.Fatalf("merge: %+v", ns)
			}
			load(v2, metadefs.PreferNew)
			if ns := get(); *ns.DisplayName != "two" || ns.Properties["p"].Title != "P2" || len(ns.Tags) != 2 {
				t.Fatalf("prefer-new: %+v", ns)
			}
			created := get().CreatedAt
			if rep := load(v1, metadefs.Overwrite); len(rep.Overwritten) != 1 {
				t.Fatalf("overwrite %+v", rep)
			}
			ns = get()
			if *ns.DisplayName != "one" || len(ns.Properties) != 1 || len(ns.Tags) != 1 || ns.Associations != nil || !ns.CreatedAt.Equal(created.Time) {
				t.Fatalf("overwrite: %+v", ns)
			}
		})
	}
}

// TestLoadHostileFiles: every bad file is refused, naming it, and nothing is loaded.
func TestLoadHostileFiles(t *testing.T) {
	good := `{"namespace":"H::Good"}`
	big := `{"namespace":"H::Big","description":"` + strings.Repeat("x", metadefs.MaxFileSize) + `"}`
	cases := map[string]string{
		"not json":          `{"namespace":`,
		"array":             `[]`,
		"two documents":     `{"namespace":"H::X"} {"namespace":"H::Y"}`,
		"unknown key":       `{"namespace":"H::X","evil":1}`,
		"no name":           `{"display_name":"x"}`,
		"slash in name":     `{"namespace":"a/b"}`,
		"control character": "{\"namespace\":\"a\\u0000b\"}",
		"long name":         `{"namespace":"` + strings.Repeat("n", 81) + `"}`,
		"bad visibility":    `{"namespace":"H::X","visibility":"shared"}`,
		"wrong type":        `{"namespace":"H::X","protected":"yes"}`,
		"bad property type": `{"namespace":"H::X","properties":{"p":{"title":"P","type":"float"}}}`,
		"no title":          `{"namespace":"H::X","properties":{"p":{"type":"string"}}}`,
		"bad regex":         `{"namespace":"H::X","properties":{"p":{"title":"P","type":"string","pattern":"(("}}}`,
		"duplicate object":  `{"namespace":"H::X","objects":[{"name":"o"},{"name":"o"}]}`,
		"duplicate tag":     `{"namespace":"H::X","tags":[{"name":"t"},{"name":"t"}]}`,
		"read-only field":   `{"namespace":"H::X","created_at":"2020-01-01T00:00:00Z"}`,
		"too large":         big,
		"same as good":      good,
	}
	s := backends(t)["bolt"]
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			dir := files(map[string]string{"0good.json": good, "1bad.json": body})
			_, err := metadefs.ReadDefinitions(dir)
			if err == nil || !strings.Contains(err.Error(), "1bad.json") {
				t.Fatalf("want an error naming the file, got %v", err)
			}
			list, _, _ := s.ListNamespaces(ctx, admin, metadefs.ListOptions{})
			if len(list) != 0 {
				t.Fatalf("something was loaded: %v", list)
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real.json"), []byte(good), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link.json"))
	if _, err := metadefs.ReadDefinitions(os.DirFS(dir)); err == nil || !strings.Contains(err.Error(), "link.json") {
		t.Fatalf("a symlink is refused: %v", err)
	}
	if _, err := metadefs.ReadDefinitions(os.DirFS(t.TempDir())); err == nil {
		t.Fatal("an empty directory is refused")
	}
	_, err := metadefs.DecodeNamespace([]byte(`{"namespace":"x","self":"/y"}`))
	mustKind(t, "self in a body", err, catalog.Forbidden)
}
