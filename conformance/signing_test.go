package conformance

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestSigning signs disks pushed with oras using the real cosign CLI, offline, in the three
// formats cosign writes, and checks what the server makes of each under demo's signing
// policy (status on the image, the signatures list), then that enforce refuses pulls of
// what is not verified (oras, containerd, plain GETs, the Image API download) and lets the
// rest through (cosign verify, HEAD, tags, referrers, callers who may push). Each case runs
// on both metadata backends.
func TestSigning(t *testing.T) {
	t.Parallel()
	tools := signTools{
		cosign:  testenv.RequireTool(t, "cosign"),
		oras:    testenv.RequireTool(t, "oras"),
		qemuImg: testenv.RequireTool(t, "qemu-img"),
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			w := startSignWorld(t, b, tools)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("server log:\n%s", tail(w.srv.Log(), 120))
				}
			})
			signingScenario(t, w)
		})
	}
}

func signingScenario(t *testing.T, w *signWorld) {
	c := w.cosign
	c.must(t, "generate-key-pair")                                    // cosign.key/.pub: ECDSA P-256, trusted as "ci"
	c.must(t, "generate-key-pair", "--output-key-prefix", "stranger") // never trusted
	ciPub := readText(t, filepath.Join(w.dir, "cosign.pub"))
	keys := w.otherKeys(t)
	chain := w.localCA(t, "builder@example.test", "https://issuer.example.test")
	identity := map[string]string{"issuer": "https://issuer.example.test", "subject": "builder@example.test"}
	policy := func(mode string, ident map[string]string) map[string]any {
		ks := []map[string]string{{"name": "ci", "public_key": ciPub}}
		for _, n := range []string{"p384", "p521", "rsa3072", "ed25519"} {
			ks = append(ks, map[string]string{"name": n, "public_key": keys[n]})
		}
		return map[string]any{"mode": mode, "keys": ks, "authorities": []map[string]any{
			{"name": "corp-ca", "certificate_chain": chain, "identities": []map[string]string{ident}}}}
	}
	w.setPolicy(t, policy("enforce", identity), nil)

	ref := func(repo string, d digest.Digest) string { return w.reg + "/" + repo + "@" + d.String() }
	experimental := c
	experimental.Env = append(slices.Clone(c.Env), "COSIGN_EXPERIMENTAL=1")

	// The three formats, each signed by ci: verified, with ci as the signer.
	formats := map[string][]string{
		"demo/tagged:v1":   nil,
		"demo/referrer:v1": {"--registry-referrers-mode=oci-1-1"},
		"demo/bundled:v1":  {"--new-bundle-format"},
	}
	digests := map[string]digest.Digest{}
	for name, extra := range formats {
		repo, _, _ := strings.Cut(name, ":")
		digests[name] = w.pushDisk(t, name)
		if w.status(t, name) != "unsigned" {
			t.Fatalf("%s before signing: %q, want unsigned", name, w.status(t, name))
		}
		w.sign(t, experimental, "cosign.key", ref(repo, digests[name]), extra...)
		w.requireStatus(t, name, "verified", "ci")
	}
	wantFormat := map[string]string{"demo/tagged:v1": "tag", "demo/referrer:v1": "referrer", "demo/bundled:v1": "bundle"}
	for name, f := range wantFormat {
		sigs := w.signatures(t, name)
		if len(sigs) != 1 || sigs[0]["format"] != f || sigs[0]["verified"] != true || sigs[0]["signer"] != "ci" ||
			sigs[0]["tool"] != "cosign" || sigs[0]["covers"] != digests[name].String() {
			t.Errorf("signatures of %s: %v, want one %s signature verified by ci covering %s", name, sigs, f, digests[name])
		}
	}
	// Filterable, and read-only.
	status, body, _ := w.api(t, "GET", "/v2/images?xloud_signature_status=verified", "member", nil)
	var list struct{ Images []map[string]any }
	decodeJSON(t, string(body), &list)
	if status != 200 || len(list.Images) != 3 {
		t.Errorf("GET /v2/images?xloud_signature_status=verified: %d, %d images, want the 3 signed", status, len(list.Images))
	}
	id := w.image(t, "demo/tagged:v1")["id"].(string)
	for _, prop := range []string{"xloud_signature_status", "xloud_signature_signers"} {
		patch := []byte(`[{"op":"add","path":"/` + prop + `","value":"verified"}]`)
		if status, body, _ := w.api(t, "PATCH", "/v2/images/"+id, "member", patch); status != 403 {
			t.Errorf("PATCH %s: %d %s, want 403", prop, status, body)
		}
	}

	// Every key type the policy admits, each signing its own disk with cosign.
	for _, n := range []string{"p384", "p521", "rsa3072", "ed25519"} {
		name := "demo/key-" + n + ":v1"
		d := w.pushDisk(t, name)
		w.sign(t, c, n+".key", ref("demo/key-"+n, d))
		w.requireStatus(t, name, "verified", n)
	}

	// An untrusted key: untrusted, and refused under enforce.
	dU := w.pushDisk(t, "demo/untrusted:v1")
	w.sign(t, c, "stranger.key", ref("demo/untrusted", dU))
	w.requireStatus(t, "demo/untrusted:v1", "untrusted", "")

	// A tampered payload: the signature of ci kept, the payload changed (optional added).
	dT := w.pushDisk(t, "demo/tampered:v1")
	w.sign(t, c, "cosign.key", ref("demo/tampered", dT))
	w.requireStatus(t, "demo/tampered:v1", "verified", "ci")
	sigTag := "sha256-" + dT.Encoded() + ".sig"
	tamper(t, w, "demo/tampered", sigTag)
	w.requireStatus(t, "demo/tampered:v1", "invalid", "")
	if sigs := w.signatures(t, "demo/tampered:v1"); len(sigs) != 1 || !strings.Contains(sigs[0]["reason"].(string), "tampered") {
		t.Errorf("signatures of a tampered payload: %v, want one naming the tampering", sigs)
	}

	// Image A's signature at image B's .sig tag: invalid for B (the claim names A).
	dA := w.pushDisk(t, "demo/pair:a")
	dB := w.pushDisk(t, "demo/pair:b")
	w.sign(t, c, "cosign.key", ref("demo/pair", dA))
	_, sigA, _ := getManifest(t, w.bases["member"], "demo/pair", "sha256-"+dA.Encoded()+".sig")
	pushManifest(t, w.bases["member"], "demo/pair", "sha256-"+dB.Encoded()+".sig", ocispec.MediaTypeImageManifest, sigA)
	w.requireStatus(t, "demo/pair:a", "verified", "ci")
	w.requireStatus(t, "demo/pair:b", "invalid", "")

	// An attestation only (bundle with another predicate type; legacy .att): not verified.
	dAt := w.pushDisk(t, "demo/attested:v1")
	writeFile(t, filepath.Join(w.dir, "pred.json"), []byte(`{"scanner":"xloud-test","result":"clean"}`))
	for _, extra := range [][]string{{"--new-bundle-format"}, nil} {
		args := append([]string{"attest", "--key", "cosign.key", "--tlog-upload=false", "-y", "--allow-http-registry",
			"--allow-insecure-registry", "--type", "https://example.com/scan/v1", "--predicate", "pred.json"}, extra...)
		c.must(t, append(args, ref("demo/attested", dAt))...)
	}
	if got := w.status(t, "demo/attested:v1"); got == "verified" {
		t.Errorf("an attested, unsigned image: %q, want not verified", got)
	}

	// A certificate from the local CA chain: verified with the right identity (both formats).
	dC := w.pushDisk(t, "demo/ca:v1")
	w.sign(t, c, "leafcosign.key", ref("demo/ca", dC), "--certificate", "leaf.pem", "--certificate-chain", "chain.pem")
	w.requireStatus(t, "demo/ca:v1", "verified", "corp-ca:builder@example.test")
	dCB := w.pushDisk(t, "demo/ca-bundle:v1")
	w.sign(t, c, "leafcosign.key", ref("demo/ca-bundle", dCB), "--new-bundle-format",
		"--certificate", "leaf.pem", "--certificate-chain", "chain.pem")
	w.requireStatus(t, "demo/ca-bundle:v1", "verified", "corp-ca:builder@example.test")

	// Unsigned: the control case.
	dN := w.pushDisk(t, "demo/unsigned:v1")
	w.requireStatus(t, "demo/unsigned:v1", "unsigned", "")

	// A notation signature (a referrer of artifactType application/vnd.cncf.notary.signature)
	// is listed with its tool, and not counted.
	_, subj, _ := getManifest(t, w.bases["member"], "demo/unsigned", dN.String())
	empty, jws := []byte("{}"), []byte(`{"payload":"e30","protected":"e30","signature":"AA"}`)
	pushBlob(t, w.bases["member"], "demo/unsigned", empty)
	pushBlob(t, w.bases["member"], "demo/unsigned", jws)
	subject := descriptorOf(ocispec.MediaTypeImageManifest, subj)
	notation := mustJSON(t, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.cncf.notary.signature", Config: descriptorOf("application/vnd.oci.empty.v1+json", empty),
		Layers: []ocispec.Descriptor{descriptorOf("application/jose+json", jws)}, Subject: &subject})
	pushManifest(t, w.bases["member"], "demo/unsigned", digest.FromBytes(notation).String(), ocispec.MediaTypeImageManifest, notation)
	w.requireStatus(t, "demo/unsigned:v1", "unsigned", "")
	if sigs := w.signatures(t, "demo/unsigned:v1"); len(sigs) != 1 || sigs[0]["tool"] != "notation" || sigs[0]["verified"] != false {
		t.Errorf("signatures of an image with a notation signature: %v, want it listed, not verified", sigs)
	}

	enforcedPulls(t, w, digests["demo/tagged:v1"], dN, dU)

	// The signature deleted: back to unsigned, and the pull refused again.
	sigD, _, _ := w.registryGet(t, "HEAD", "member", "demo/tagged/manifests/sha256-"+digests["demo/tagged:v1"].Encoded()+".sig")
	if sigD != 200 {
		t.Fatalf("HEAD of the .sig manifest: %d", sigD)
	}
	resp := do(t, "DELETE", w.bases["member"]+"/v2/demo/tagged/manifests/sha256-"+digests["demo/tagged:v1"].Encoded()+".sig", "", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("DELETE .sig tag: %s", resp.Status)
	}
	w.requireStatus(t, "demo/tagged:v1", "unsigned", "")
	st, body, _ := w.registryGet(t, "GET", "reader", "demo/tagged/manifests/v1")
	requireDenied(t, "GET demo/tagged:v1 after its signature was deleted", st, body)

	// A policy change re-verifies in the background: a wrong identity makes the CA's
	// signatures untrusted, removing the policy makes everything signed untrusted.
	w.setPolicy(t, policy("enforce", map[string]string{"issuer": "https://issuer.example.test", "subject_regexp": "^deployer@"}),
		map[string]string{"demo/ca:v1": "untrusted", "demo/ca-bundle:v1": "untrusted", "demo/bundled:v1": "verified"})
	if status, body, _ := w.api(t, "DELETE", "/v2/xloud/projects/"+w.demoID+"/signing-policy", "manager", nil); status != 204 {
		t.Fatalf("DELETE signing-policy: %d %s", status, body)
	}
	w.waitStatus(t, "demo/bundled:v1", "untrusted")
	if st, _, _ := w.registryGet(t, "GET", "reader", "demo/unsigned/manifests/v1"); st != 200 {
		t.Errorf("GET unsigned with no policy: %d, want 200", st)
	}
}

// tamper rewrites the .sig manifest at tag: the payload gains an optional annotation, the
// signature annotation stays.
func tamper(t *testing.T, w *signWorld, repo, tag string) {
	t.Helper()
	_, body, _ := getManifest(t, w.bases["member"], repo, tag)
	var m ocispec.Manifest
	decodeJSON(t, string(body), &m)
	resp := do(t, "GET", w.bases["member"]+"/v2/"+repo+"/blobs/"+m.Layers[0].Digest.String(), "", nil)
	payload := bytes.Replace(resp.body, []byte(`"optional":null`), []byte(`"optional":{"approved":"yes"}`), 1)
	if bytes.Equal(payload, resp.body) {
		t.Fatalf("payload has no optional null: %s", resp.body)
	}
	pushBlob(t, w.bases["member"], repo, payload)
	m.Layers[0].Digest, m.Layers[0].Size = digest.FromBytes(payload), int64(len(payload))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	pushManifest(t, w.bases["member"], repo, tag, ocispec.MediaTypeImageManifest, b)
}

// enforcedPulls: under enforce the reader (who may not push) pulls signed content with oras
// and cosign verify works; unsigned, untrusted content is refused DENIED by tag, by digest and
// for its blobs, and by the Image API download; HEAD, tags, referrers and the member's GETs
// stay allowed; warn lets it through with a Warning.
func enforcedPulls(t *testing.T, w *signWorld, signed, unsigned, untrusted digest.Digest) {
	t.Helper()
	reader := w.oras["reader"]
	reader.must(t, "pull", "--plain-http", "--no-tty", "-o", t.TempDir(), w.reg+"/demo/tagged:v1")
	out := reader.mustFail(t, "pull", "--plain-http", "--no-tty", "-o", t.TempDir(), w.reg+"/demo/unsigned:v1")
	if !strings.Contains(out, "DENIED") && !strings.Contains(strings.ToLower(out), "denied") {
		t.Errorf("oras pull of an unsigned image: %s, want DENIED", out)
	}
	verifier := w.cosign
	verifier.Env = reader.Env
	for _, name := range []string{"demo/tagged", "demo/bundled"} {
		verifier.must(t, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--trusted-root", "trusted_root.json",
			"--allow-http-registry", "--allow-insecure-registry", w.reg+"/"+name+":v1")
	}

	for what, path := range map[string]string{
		"by tag":      "demo/unsigned/manifests/v1",
		"by digest":   "demo/unsigned/manifests/" + unsigned.String(),
		"untrusted":   "demo/untrusted/manifests/" + untrusted.String(),
		"tampered":    "demo/tampered/manifests/v1",
		"wrong claim": "demo/pair/manifests/b",
		"attested":    "demo/attested/manifests/v1",
	} {
		st, body, _ := w.registryGet(t, "GET", "reader", path)
		requireDenied(t, "GET "+what, st, body)
	}
	_, mb, _ := w.registryGet(t, "GET", "member", "demo/unsigned/manifests/v1")
	var m ocispec.Manifest
	decodeJSON(t, string(mb), &m)
	st, body, _ := w.registryGet(t, "GET", "reader", "demo/unsigned/blobs/"+m.Layers[0].Digest.String())
	requireDenied(t, "GET blob of an unsigned image", st, body)
	// Nor can the reader mount it into a project of theirs without a policy (202: no mount,
	// an upload starts instead).
	mount := do(t, "POST", w.bases["reader"]+"/v2/other/stolen/blobs/uploads/?mount="+m.Layers[0].Digest.String()+"&from=demo/unsigned", "", nil)
	if mount.StatusCode != 202 {
		t.Errorf("mount of an unsigned image's disk out of an enforcing project: %s, want 202 (not mounted)", mount.Status)
	}
	for _, c := range map[string]struct{ method, who, path string }{
		"HEAD":           {"HEAD", "reader", "demo/unsigned/manifests/v1"},
		"tags":           {"GET", "reader", "demo/unsigned/tags/list"},
		"referrers":      {"GET", "reader", "demo/unsigned/referrers/" + unsigned.String()},
		"member GET":     {"GET", "member", "demo/unsigned/manifests/v1"},
		"signed GET":     {"GET", "reader", "demo/tagged/manifests/" + signed.String()},
		"signature":      {"GET", "reader", "demo/tagged/manifests/sha256-" + signed.Encoded() + ".sig"},
		"signed by cert": {"GET", "reader", "demo/ca/manifests/v1"},
	} {
		if st, body, _ := w.registryGet(t, c.method, c.who, c.path); st != 200 {
			t.Errorf("%s %s as %s under enforce: %d %s, want 200", c.method, c.path, c.who, st, body)
		}
	}
	// The Image API download: 403 in Glance's format for the unsigned, 200 for the signed.
	for name, want := range map[string]int{"demo/unsigned:v1": 403, "demo/tagged:v1": 200} {
		id := w.image(t, name)["id"].(string)
		st, body, _ := w.api(t, "GET", "/v2/images/"+id+"/file", "reader", nil)
		if st != want || (want == 403 && !strings.Contains(string(body), "not signed")) {
			t.Errorf("download %s under enforce: %d %.200s, want %d", name, st, body, want)
		}
	}

	// warn: allowed, with a Warning 299 naming the reason.
	pol := map[string]any{}
	_, pb, _ := w.api(t, "GET", "/v2/xloud/projects/"+w.demoID+"/signing-policy", "reader", nil)
	decodeJSON(t, string(pb), &pol)
	pol["mode"] = "warn"
	w.setPolicy(t, pol, nil)
	st, _, h := w.registryGet(t, "GET", "reader", "demo/unsigned/manifests/v1")
	if st != 200 || !strings.HasPrefix(h.Get("Warning"), `299 - "`) || !strings.Contains(h.Get("Warning"), "unsigned") {
		t.Errorf("GET unsigned under warn: %d Warning %q, want 200 with a 299 warning", st, h.Get("Warning"))
	}
	if _, _, h := w.registryGet(t, "GET", "reader", "demo/tagged/manifests/v1"); h.Get("Warning") != "" {
		t.Errorf("GET signed under warn: Warning %q, want none", h.Get("Warning"))
	}
	// Counted once, by API.
	metrics := do(t, "GET", "http://"+w.reg+"/metrics", "", nil)
	if !strings.Contains(string(metrics.body), `xloud_signature_warnings_total{api="registry"} 1`) {
		t.Errorf("metrics after one warned pull: no xloud_signature_warnings_total{api=\"registry\"} 1 (%s)", metrics.Status)
	}
	pol["mode"] = "enforce"
	w.setPolicy(t, pol, nil)
}

// TestSigningContainerd: a VM image uploaded through the Image API, its VM-image index
// signed with cosign by tag (latest), pulls with containerd under enforce: the signature on
// the index covers the containerDisk manifest containerd picks and its layer. The same
// upload unsigned is refused. On both metadata backends.
func TestSigningContainerd(t *testing.T) {
	t.Parallel()
	tools := signTools{
		cosign:  testenv.RequireTool(t, "cosign"),
		oras:    testenv.RequireTool(t, "oras"),
		qemuImg: testenv.RequireTool(t, "qemu-img"),
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			w := startSignWorld(t, b, tools)
			w.cosign.must(t, "generate-key-pair")
			w.setPolicy(t, map[string]any{"mode": "enforce", "keys": []map[string]string{
				{"name": "ci", "public_key": readText(t, filepath.Join(w.dir, "cosign.pub"))}}}, nil)
			signedRef := w.uploadImage(t, "golden")
			unsignedRef := w.uploadImage(t, "scratch")
			// cosign resolves latest to the index digest and signs that.
			latest := signedRef[:strings.LastIndex(signedRef, ":")] + ":latest"
			w.sign(t, w.cosign, "cosign.key", latest)
			w.requireStatus(t, "golden", "verified", "ci")
			w.requireStatus(t, "scratch", "unsigned", "")

			ctd := testenv.StartContainerd(t)
			reader := signAccounts["reader"].Account.creds()
			pull := func(ref string) (string, error) {
				return ctd.Ctr("images", "pull", "--plain-http", "--user", reader, "--snapshotter", "native",
					"--platform", "linux/amd64", ref)
			}
			if out, err := pull(latest); err != nil {
				t.Errorf("ctr pull of the signed image %s: %v\n%s", latest, err, tail(out, 20))
			}
			out, err := pull(unsignedRef)
			t.Logf("ctr pull %s (unsigned): %v\n%s", unsignedRef, err, tail(out, 3))
			if err == nil || !strings.Contains(out, "403") && !strings.Contains(strings.ToLower(out), "denied") {
				t.Errorf("ctr pull of the unsigned image %s: %v, want refused 403:\n%s", unsignedRef, err, tail(out, 20))
			}
		})
	}
}

// uploadImage creates an image named name through the Image API as the member, uploads a
// qcow2 disk, and returns its xloud_oci_reference (host/repo:id).
func (w *signWorld) uploadImage(t *testing.T, name string) string {
	t.Helper()
	status, body, _ := w.api(t, "POST", "/v2/images", "member", map[string]any{
		"name": name, "disk_format": "qcow2", "container_format": "bare"})
	var img map[string]any
	decodeJSON(t, string(body), &img)
	if status != 201 {
		t.Fatalf("create image %s: %d %s", name, status, body)
	}
	id := img["id"].(string)
	disk := makeQcow2(t, w.tools.qemuImg, t.TempDir())
	req, err := http.NewRequest("PUT", w.srv.APIURL(false)+"/v2/images/"+id+"/file", bytes.NewReader(disk))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", w.tokens["member"])
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, out := roundTrip(t, req); resp.StatusCode != 204 {
		t.Fatalf("upload %s: %s %s", name, resp.Status, out)
	}
	ref, _ := w.image(t, name)["xloud_oci_reference"].(string)
	if ref == "" {
		t.Fatalf("image %s has no xloud_oci_reference", name)
	}
	return ref
}
