package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestInspectCommand runs `xloud-image inspect` on images made with qemu-img.
func TestInspectCommand(t *testing.T) {
	qemu := testenv.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	good, base, bad := filepath.Join(dir, "good.qcow2"), filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "bad.qcow2")
	for _, args := range [][]string{
		{"create", "-f", "qcow2", good, "100M"},
		{"create", "-f", "qcow2", base, "100M"},
		{"create", "-f", "qcow2", "-F", "qcow2", "-b", base, bad, "100M"},
	} {
		if out, err := exec.Command(qemu, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	inspect := func(path string) map[string]any {
		out, err := exec.Command(testenv.Binary(t), "inspect", path).Output()
		if err != nil {
			t.Fatalf("inspect %s: %v", path, err)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("inspect output %s: %v", out, err)
		}
		return v
	}
	if v := inspect(good); v["format"] != "qcow2" || v["virtual_size"] != float64(100<<20) || v["safe"] != true {
		t.Fatalf("good qcow2: %v", v)
	}
	if v := inspect(bad); v["safe"] != false || v["reason"] == "" {
		t.Fatalf("qcow2 with a backing file: %v", v)
	}
	if err := exec.Command(testenv.Binary(t), "inspect", filepath.Join(dir, "missing")).Run(); err == nil {
		t.Fatal("inspect of a missing file succeeded")
	}
}
