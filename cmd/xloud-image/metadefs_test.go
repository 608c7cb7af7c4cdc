package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// namespaceShow is GET of one namespace on a live server (auth none): status and body.
func namespaceShow(t *testing.T, c *client, name string) (int, map[string]any) {
	t.Helper()
	resp, body, err := c.do("GET", "/v2/metadefs/namespaces/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(body, &m)
	return resp.StatusCode, m
}

func writeDefs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadReport runs `metadefs load` and decodes what it prints.
func loadReport(t *testing.T, args ...string) map[string][]string {
	t.Helper()
	out, errOut, code := run(t, nil, append([]string{"metadefs", "load"}, args...)...)
	if code != 0 {
		t.Fatalf("metadefs load %v: exit %d %s", args, code, errOut)
	}
	var rep map[string][]string
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	return rep
}

// TestMetadefsLoadCommand: the shipped definitions are there on a first start; `metadefs
// load` skips, merges or overwrites existing namespaces as glance-manage db_load_metadefs
// does, through a running server's admin socket and on a stopped data directory; bad files
// and flags change nothing.
func TestMetadefsLoadCommand(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	c := &client{t: t, base: "http://" + srv.APIAddr}
	resp, body, err := c.do("GET", "/v2/metadefs/namespaces?limit=100", nil)
	var list struct{ Namespaces []map[string]any }
	json.Unmarshal(body, &list)
	if err != nil || resp.StatusCode != 200 || len(list.Namespaces) != 33 {
		t.Fatalf("shipped namespaces on first start: %v %d", err, len(list.Namespaces))
	}
	if code, ns := namespaceShow(t, c, "OS::Compute::Libvirt?resource_type=OS::Glance::Image"); code != 200 || ns["properties"].(map[string]any)["hw_boot_menu"] == nil {
		t.Fatalf("OS::Compute::Libvirt for images: %d %v", code, ns)
	}

	v1 := writeDefs(t, map[string]string{"site.json": `{"namespace":"Site::A","display_name":"one","visibility":"public",
		"properties":{"p":{"title":"P1","type":"string"}}}`})
	v2 := writeDefs(t, map[string]string{"site.json": `{"namespace":"Site::A","display_name":"two","visibility":"public",
		"properties":{"p":{"title":"P2","type":"string"},"q":{"title":"Q","type":"integer"}}}`})
	dd := "--data-dir=" + srv.DataDir
	if rep := loadReport(t, dd, v1); len(rep["created"]) != 1 {
		t.Fatalf("first load: %v", rep)
	}
	if rep := loadReport(t, dd, v2); len(rep["skipped"]) != 1 {
		t.Fatalf("default load of an existing namespace: %v", rep)
	}
	if _, ns := namespaceShow(t, c, "Site::A"); ns["display_name"] != "one" {
		t.Fatalf("skip changed it: %v", ns)
	}
	loadReport(t, dd, "--merge", v2)
	_, ns := namespaceShow(t, c, "Site::A")
	props := ns["properties"].(map[string]any)
	if ns["display_name"] != "one" || props["q"] == nil || props["p"].(map[string]any)["title"] != "P1" {
		t.Fatalf("merge: %v", ns)
	}
	loadReport(t, dd, "--merge", "--prefer-new", v2)
	if _, ns := namespaceShow(t, c, "Site::A"); ns["display_name"] != "two" {
		t.Fatalf("prefer-new: %v", ns)
	}
	if rep := loadReport(t, dd, "--overwrite", v1); len(rep["overwritten"]) != 1 {
		t.Fatalf("overwrite: %v", rep)
	}
	if _, ns := namespaceShow(t, c, "Site::A"); ns["display_name"] != "one" || len(ns["properties"].(map[string]any)) != 1 {
		t.Fatalf("overwrite: %v", ns)
	}

	// Refusals, each changing nothing.
	bad := writeDefs(t, map[string]string{"a.json": `{"namespace":"Site::B"}`, "b.json": `{"namespace":"Site::C","visibility":"everyone"}`})
	for _, args := range [][]string{
		{dd, bad},
		{dd, "--overwrite", "--merge", v1},
		{dd, "--prefer-new", v1},
		{dd},
		{dd, filepath.Join(t.TempDir(), "missing")},
		{"--data-dir=" + t.TempDir(), v1}, // no store there
	} {
		_, errOut, code := run(t, nil, append([]string{"metadefs", "load"}, args...)...)
		if code != 1 || errOut == "" {
			t.Errorf("metadefs load %v: exit %d %q, want a refusal", args, code, errOut)
		}
	}
	if _, errOut, _ := run(t, nil, "metadefs", "load", dd, bad); !strings.Contains(errOut, "b.json") {
		t.Errorf("the refusal names the bad file: %q", errOut)
	}
	if code, _ := namespaceShow(t, c, "Site::B"); code != 404 {
		t.Fatalf("a refused load created Site::B: %d", code)
	}

	// On a stopped data directory the command opens the store itself.
	srv.Stop()
	v3 := writeDefs(t, map[string]string{"other.json": `{"namespace":"Site::D","visibility":"public"}`})
	if rep := loadReport(t, dd, v3); len(rep["created"]) != 1 {
		t.Fatalf("load on a stopped data dir: %v", rep)
	}
	srv.Start()
	c.base = "http://" + srv.APIAddr
	if code, _ := namespaceShow(t, c, "Site::D"); code != 200 {
		t.Fatalf("Site::D after restart: %d", code)
	}
	if code, _ := namespaceShow(t, c, "Site::A"); code != 200 {
		t.Fatalf("Site::A after restart: %d", code)
	}
}

// TestMetadefsHelp: help exits 0 and names the flags; an unknown sub-command is refused.
func TestMetadefsHelp(t *testing.T) {
	for _, args := range [][]string{{"metadefs", "-h"}, {"metadefs", "load", "-h"}, {"metadefs", "load", "--help"}} {
		out, errOut, code := run(t, nil, args...)
		if code != 0 || !strings.Contains(out+errOut, "--overwrite") && !strings.Contains(out+errOut, "-overwrite") {
			t.Errorf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
	if _, errOut, code := run(t, nil, "metadefs", "unload"); code != 1 || !strings.Contains(errOut, "usage") {
		t.Errorf("metadefs unload: exit %d %q", code, errOut)
	}
}

// TestMetadefsSharedByNodes: two servers on one Redis load the shipped definitions once
// between them, and a change made through one is what the other shows next, though it had
// the namespace's show cached.
func TestMetadefsSharedByNodes(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	a := testenv.StartServer(t, testenv.ServerOptions{RedisURL: redisURL})
	b := testenv.StartServer(t, testenv.ServerOptions{RedisURL: redisURL})
	ca, cb := &client{t: t, base: "http://" + a.APIAddr}, &client{t: t, base: "http://" + b.APIAddr}
	_, body, err := cb.do("GET", "/v2/metadefs/namespaces?limit=100", nil)
	var list struct{ Namespaces []map[string]any }
	json.Unmarshal(body, &list)
	if err != nil || len(list.Namespaces) != 33 {
		t.Fatalf("second node lists %d namespaces (%v), want the 33 loaded once", len(list.Namespaces), err)
	}
	if code, ns := namespaceShow(t, ca, "OS::Compute::Hypervisor"); code != 200 || ns["display_name"] != "Hypervisor Selection" {
		t.Fatalf("node a: %d %v", code, ns)
	}
	resp, body, err := cb.do("PUT", "/v2/metadefs/namespaces/OS::Compute::Hypervisor",
		strings.NewReader(`{"namespace":"OS::Compute::Hypervisor","display_name":"Renamed","visibility":"public","protected":true}`),
		"Content-Type", "application/json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("update on node b: %v %v %s", resp, err, body)
	}
	if code, ns := namespaceShow(t, ca, "OS::Compute::Hypervisor"); code != 200 || ns["display_name"] != "Renamed" {
		t.Fatalf("node a after node b's update: %d %v", code, ns["display_name"])
	}
}
