package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

const diskInspection = "https://xloud.tech/attestations/disk-inspection/v1"

// serverKey fetches the server's public key from a port.
func serverKey(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/v2/xloud/signing/server-key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("-----BEGIN PUBLIC KEY-----")) || resp.Header.Get("X-Xloud-Key-Id") == "" {
		t.Fatalf("server key at %s: %d %s", base, resp.StatusCode, b)
	}
	return b
}

// attestation is what cosign verify-attestation prints per verified attestation.
type attestation struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate struct {
		ImageID     string            `json:"image_id"`
		DiskFormat  string            `json:"disk_format"`
		VirtualSize int64             `json:"virtual_size"`
		Size        int64             `json:"size"`
		Safety      string            `json:"safety"`
		Digests     map[string]string `json:"digests"`
		Source      string            `json:"source"`
		KeyID       string            `json:"key_id"`
	} `json:"predicate"`
}

// decodeAttestations reads cosign's output: one DSSE envelope per line.
func decodeAttestations(t *testing.T, out string) []attestation {
	t.Helper()
	var atts []attestation
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var env struct {
			Payload string `json:"payload"`
		}
		if json.Unmarshal([]byte(line), &env) != nil {
			continue
		}
		p, _ := base64.StdEncoding.DecodeString(env.Payload)
		var a attestation
		if err := json.Unmarshal(p, &a); err != nil {
			t.Fatalf("attestation payload: %v: %s", err, p)
		}
		atts = append(atts, a)
	}
	return atts
}

// TestServerAttestation checks the server's signed disk inspection on both doors and both
// backends with the real cosign CLI, offline: an image uploaded through the Image API and a
// qcow2 pushed with oras each carry an attestation that `cosign verify-attestation --key
// <server key> --type https://xloud.tech/attestations/disk-inspection/v1` accepts, with the
// facts of the inspection; another key, another type, fail; the key is the same on both
// ports and after a restart, and the old attestation still verifies.
func TestServerAttestation(t *testing.T) {
	t.Parallel()
	cosignBin := testenv.RequireTool(t, "cosign")
	orasBin := testenv.RequireTool(t, "oras")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		cosign := tool{Path: cosignBin, Dir: dir, Env: []string{"COSIGN_PASSWORD=xloud-test", "TUF_ROOT=" + t.TempDir(), "TUF_MIRROR=http://127.0.0.1:9"}}
		oras := tool{Path: orasBin, Dir: dir}
		key := serverKey(t, "http://"+srv.APIAddr)
		if other := serverKey(t, srv.URL()); !bytes.Equal(key, other) {
			t.Fatalf("the ports serve different keys:\n%s\n%s", key, other)
		}
		writeFile(t, filepath.Join(dir, "server.pub"), key)
		cosign.must(t, "generate-key-pair", "--output-key-prefix", "other")
		verify := func(keyFile, typ, ref string) []string {
			return []string{"verify-attestation", "--key", keyFile, "--type", typ, "--insecure-ignore-tlog",
				"--allow-http-registry", "--allow-insecure-registry", ref}
		}

		// The Image API door: upload, then verify the reference the image shows.
		data := randomBytes(1 << 20)
		api := "http://" + srv.APIAddr
		var img map[string]any
		resp := do(t, "POST", api+"/v2/images", "application/json", []byte(`{"name":"attested","disk_format":"raw","container_format":"bare"}`))
		json.Unmarshal(resp.body, &img)
		id, _ := img["id"].(string)
		req, _ := http.NewRequest("PUT", api+"/v2/images/"+id+"/file", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/octet-stream")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
			t.Fatalf("upload: %v %v", err, resp)
		}
		img = map[string]any{}
		json.Unmarshal(do(t, "GET", api+"/v2/images/"+id, "", nil).body, &img)
		ref, _ := img["xloud_oci_reference"].(string)
		if img["status"] != "active" || ref == "" {
			t.Fatalf("uploaded image: %v", img)
		}
		sum := sha256.Sum256(data)
		atts := decodeAttestations(t, cosign.must(t, verify("server.pub", diskInspection, ref)...))
		if len(atts) != 1 {
			t.Fatalf("cosign verify-attestation %s: %d attestations", ref, len(atts))
		}
		a := atts[0]
		if a.PredicateType != diskInspection || a.Predicate.ImageID != id || a.Predicate.DiskFormat != "raw" ||
			a.Predicate.VirtualSize != 1<<20 || a.Predicate.Size != 1<<20 || a.Predicate.Safety != "safe" ||
			a.Predicate.Source != "image-api" || a.Predicate.Digests["disk"] != "sha256:"+hex.EncodeToString(sum[:]) ||
			len(a.Subject) != 1 || "sha256:"+a.Subject[0].Digest["sha256"] != a.Predicate.Digests["manifest"] {
			t.Fatalf("attestation of the upload: %+v", a)
		}
		cosign.mustFail(t, verify("other.pub", diskInspection, ref)...)
		cosign.mustFail(t, verify("server.pub", "https://example.com/scan/v1", ref)...)
		// It is a referrer of the image's index too.
		repo := strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], srv.RegistryAddr+"/")
		resp = do(t, "GET", srv.URL()+"/v2/"+repo+"/referrers/"+a.Predicate.Digests["manifest"], "", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(resp.body), `"application/vnd.oci.image.config.v1+json"`) {
			t.Errorf("referrers of the index: %d %s", resp.StatusCode, resp.body)
		}

		// A glance-direct import is attested as an upload is.
		json.Unmarshal(do(t, "POST", api+"/v2/images", "application/json", []byte(`{"name":"imported","disk_format":"raw","container_format":"bare"}`)).body, &img)
		imported, _ := img["id"].(string)
		if r := do(t, "PUT", api+"/v2/images/"+imported+"/stage", "application/octet-stream", data); r.StatusCode != 204 {
			t.Fatalf("stage: %d %s", r.StatusCode, r.body)
		}
		if r := do(t, "POST", api+"/v2/images/"+imported+"/import", "application/json", []byte(`{"method":{"name":"glance-direct"}}`)); r.StatusCode != 202 {
			t.Fatalf("import: %d %s", r.StatusCode, r.body)
		}
		for i := 0; ; i++ {
			img = map[string]any{}
			json.Unmarshal(do(t, "GET", api+"/v2/images/"+imported, "", nil).body, &img)
			if img["status"] == "active" {
				break
			}
			if i == 200 {
				t.Fatalf("imported image stays %v", img["status"])
			}
			time.Sleep(50 * time.Millisecond)
		}
		atts = decodeAttestations(t, cosign.must(t, verify("server.pub", diskInspection, img["xloud_oci_reference"].(string))...))
		if len(atts) != 1 || atts[0].Predicate.ImageID != imported || atts[0].Predicate.Digests["disk"] != a.Predicate.Digests["disk"] {
			t.Fatalf("attestation of the import: %+v", atts)
		}

		// The registry door: a qcow2 pushed with oras.
		qcow := filepath.Join(dir, "disk.qcow2")
		if out, err := exec.Command(testenv.RequireTool(t, "qemu-img"), "create", "-f", "qcow2", qcow, "16M").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v %s", err, out)
		}
		pushed := srv.RegistryAddr + "/vm/pushed:v1"
		oras.must(t, "push", "--plain-http", pushed, "--artifact-type", "application/vnd.xloud.vm-image", "disk.qcow2:application/vnd.diskimage.qcow2")
		atts = decodeAttestations(t, cosign.must(t, verify("server.pub", diskInspection, pushed)...))
		if len(atts) != 1 || atts[0].Predicate.DiskFormat != "qcow2" || atts[0].Predicate.VirtualSize != 16<<20 ||
			atts[0].Predicate.Source != "registry" || atts[0].Predicate.Safety != "safe" || atts[0].Predicate.ImageID == "" {
			t.Fatalf("attestation of the push: %+v", atts)
		}

		// Garbage collection keeps the attestations (tagged content): both still verify.
		// gc opens the server's stores: its metadata store and its blob stores, as it runs.
		gcArgs := []string{"gc", "--data-dir", srv.DataDir, "--grace", "0s"}
		for i := 0; i+1 < len(srv.Args); i++ {
			switch srv.Args[i] {
			case "--redis-url", "--store", "--default-store":
				gcArgs = append(gcArgs, srv.Args[i], srv.Args[i+1])
			}
		}
		if out, err := exec.Command(testenv.Binary(t), gcArgs...).CombinedOutput(); err != nil {
			t.Fatalf("gc: %v %s", err, out)
		}
		cosign.must(t, verify("server.pub", diskInspection, ref)...)
		cosign.must(t, verify("server.pub", diskInspection, pushed)...)

		// The key survives a restart (it is in the metadata store), and so do attestations.
		srv.Stop()
		srv.Start()
		if again := serverKey(t, srv.URL()); !bytes.Equal(again, key) {
			t.Fatalf("key after restart:\n%s\nwant\n%s", again, key)
		}
		ref = srv.RegistryAddr + ref[strings.Index(ref, "/"):]
		cosign.must(t, verify("server.pub", diskInspection, ref)...)

		// Deleting the image takes its attestation along: no .att tag is left behind.
		attTag := strings.Replace(a.Predicate.Digests["manifest"], ":", "-", 1) + ".att"
		if tags := tagList(t, srv.URL(), repo); !slices.Contains(tags, attTag) {
			t.Fatalf("tags before delete: %q, want %s", tags, attTag)
		}
		if r := do(t, "DELETE", "http://"+srv.APIAddr+"/v2/images/"+id, "", nil); r.StatusCode != 204 {
			t.Fatalf("delete image: %d %s", r.StatusCode, r.body)
		}
		if r := do(t, "GET", srv.URL()+"/v2/"+repo+"/manifests/"+attTag, "", nil); r.StatusCode != 404 {
			t.Fatalf("attestation after the image was deleted: %d %s", r.StatusCode, r.body)
		}
	})
}
