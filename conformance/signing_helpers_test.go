package conformance

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// signWorld is a server with authentication on, the project demo (a manager, a member who
// pushes and signs, a reader who only pulls) and the project other, with clients logged in.
type signWorld struct {
	srv     *testenv.Server
	dir     string
	demoID  string
	otherID string
	reg     string
	tokens  map[string]string // admin, manager, member, reader, outsider
	bases   map[string]string // Registry API base URLs with Basic credentials
	cosign  tool              // as the member
	oras    map[string]tool   // member, reader
	tools   signTools
}

type signTools struct{ cosign, oras, qemuImg string }

var signAccounts = map[string]roleGrant{
	"manager":  {"demo", account{"maria", "maria-pw"}, "manager"},
	"member":   {"demo", account{"mike", "mike-pw"}, "member"},
	"reader":   {"demo", account{"rita", "rita-pw"}, "reader"},
	"outsider": {"other", account{"otto", "otto-pw"}, "member"},
}

func startSignWorld(t *testing.T, backend string, tools signTools) *signWorld {
	t.Helper()
	srv := startBackend(t, backend, authArgs()...)
	id := testenv.AdminIdentity(t, srv.APIURL(false), nil, adminPassword)
	w := &signWorld{srv: srv, dir: t.TempDir(), reg: srv.RegistryAddr, tools: tools,
		tokens: map[string]string{"admin": id.Token}, bases: map[string]string{}, oras: map[string]tool{}}
	w.demoID, w.otherID = id.Project(t, "demo"), id.Project(t, "other")
	for name, g := range signAccounts {
		project := map[string]string{"demo": w.demoID, "other": w.otherID}[g.Project]
		uid := id.User(t, project, g.Account.User, g.Account.Password, g.Role)
		if name == "reader" {
			// The reader may push elsewhere: a mount must not carry demo's unverified
			// content there.
			if err := id.Grant(w.otherID, uid, "member"); err != nil {
				t.Fatal(err)
			}
		}
		tok, err := id.Login(g.Account.User, g.Account.Password, g.Project)
		if err != nil {
			t.Fatalf("login %s: %v", name, err)
		}
		w.tokens[name] = tok
		w.bases[name] = "http://" + url.UserPassword(g.Account.User, g.Account.Password).String() + "@" + w.reg
	}
	// cosign and oras read the Docker config format; each account gets its own.
	for _, name := range []string{"member", "reader"} {
		a := signAccounts[name].Account
		cfg := filepath.Join(t.TempDir(), "config.json")
		writeFile(t, cfg, mustJSON(t, map[string]any{"auths": map[string]any{
			w.reg: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(a.creds()))}}}))
		env := []string{"DOCKER_CONFIG=" + filepath.Dir(cfg), "COSIGN_PASSWORD=xloud-test",
			"TUF_ROOT=" + t.TempDir(), "TUF_MIRROR=http://127.0.0.1:9"}
		w.oras[name] = tool{Path: tools.oras, Dir: w.dir, Env: env}
		if name == "member" {
			w.cosign = tool{Path: tools.cosign, Dir: w.dir, Env: env}
		}
	}
	writeFile(t, filepath.Join(w.dir, "trusted_root.json"),
		[]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`))
	return w
}

// api sends a request to the API port with who's token ("" for none).
func (w *signWorld) api(t *testing.T, method, path, who string, body any) (int, []byte, http.Header) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		b = mustJSON(t, v)
	}
	req, err := http.NewRequest(method, w.srv.APIURL(false)+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("X-Auth-Token", w.tokens[who])
	}
	if method == "PATCH" {
		req.Header.Set("Content-Type", "application/openstack-images-v2.1-json-patch")
	} else if b != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, out := roundTrip(t, req)
	return resp.StatusCode, out, resp.Header
}

// setPolicy PUTs demo's signing policy as its manager and waits until the background
// re-verification has reached every image named in settle (name → wanted status).
func (w *signWorld) setPolicy(t *testing.T, policy map[string]any, settle map[string]string) {
	t.Helper()
	status, body, _ := w.api(t, "PUT", "/v2/xloud/projects/"+w.demoID+"/signing-policy", "manager", policy)
	if status != 200 {
		t.Fatalf("PUT signing-policy: %d %s", status, body)
	}
	for name, want := range settle {
		w.waitStatus(t, name, want)
	}
}

// pushDisk pushes a fresh qcow2 disk with oras as the member to ref (repo:tag) and returns
// the manifest digest.
func (w *signWorld) pushDisk(t *testing.T, ref string) digest.Digest {
	t.Helper()
	dir := t.TempDir()
	disk := makeQcow2(t, w.tools.qemuImg, dir)
	name := strings.NewReplacer("/", "-", ":", "-").Replace(ref) + ".qcow2"
	writeFile(t, filepath.Join(w.dir, name), disk)
	var out orasDescriptor
	decodeJSON(t, w.oras["member"].must(t, "push", "--plain-http", "--no-tty", "--format", "json",
		w.reg+"/"+ref, name+":"+qcow2LayerType), &out)
	return out.Digest
}

// image returns the image named name, as the member sees it.
func (w *signWorld) image(t *testing.T, name string) map[string]any {
	t.Helper()
	status, body, _ := w.api(t, "GET", "/v2/images?name="+url.QueryEscape("in:\""+name+"\""), "member", nil)
	var list struct{ Images []map[string]any }
	if status == 200 {
		decodeJSON(t, string(body), &list)
	}
	if status != 200 || len(list.Images) != 1 {
		t.Fatalf("GET /v2/images?name=%s: %d %s, want one image", name, status, body)
	}
	return list.Images[0]
}

func (w *signWorld) status(t *testing.T, name string) string {
	t.Helper()
	s, _ := w.image(t, name)["xloud_signature_status"].(string)
	return s
}

// waitStatus waits up to 20 s for image name to show want (policy changes re-verify in the
// background; signature pushes and deletes answer only once the status is updated).
func (w *signWorld) waitStatus(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := w.status(t, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s: xloud_signature_status %q, want %q", name, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireStatus checks image name shows want now, with the signers listed.
func (w *signWorld) requireStatus(t *testing.T, name, want, signers string) {
	t.Helper()
	img := w.image(t, name)
	got, _ := img["xloud_signature_status"].(string)
	gotSigners, _ := img["xloud_signature_signers"].(string)
	if got != want || gotSigners != signers {
		t.Fatalf("image %s: status %q signers %q, want %q %q", name, got, gotSigners, want, signers)
	}
}

// signatures returns GET /v2/images/{id}/signatures of image name.
func (w *signWorld) signatures(t *testing.T, name string) []map[string]any {
	t.Helper()
	id := w.image(t, name)["id"].(string)
	status, body, _ := w.api(t, "GET", "/v2/images/"+id+"/signatures", "reader", nil)
	var out struct{ Signatures []map[string]any }
	if status == 200 {
		decodeJSON(t, string(body), &out)
	}
	if status != 200 {
		t.Fatalf("GET signatures of %s: %d %s", name, status, body)
	}
	return out.Signatures
}

// sign runs cosign sign as the member with key on ref, offline (no transparency log).
func (w *signWorld) sign(t *testing.T, c tool, key, ref string, extra ...string) {
	t.Helper()
	args := []string{"sign", "--key", key, "--tlog-upload=false", "-y", "--allow-http-registry", "--allow-insecure-registry"}
	c.must(t, append(append(args, extra...), ref)...)
}

// pemFile writes one PEM block to dir/name and returns its text.
func pemFile(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	writeFile(t, filepath.Join(dir, name), b)
	return string(b)
}

// importKey writes priv as PKCS#8 and imports it with `cosign import-key-pair` as
// prefix.key / prefix.pub; it returns the public key PEM.
func (w *signWorld) importKey(t *testing.T, prefix string, priv crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pemFile(t, w.dir, prefix+".pem", "PRIVATE KEY", der)
	w.cosign.must(t, "import-key-pair", "--key", prefix+".pem", "--output-key-prefix", prefix)
	pub, err := os.ReadFile(filepath.Join(w.dir, prefix+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return string(pub)
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Fulcio's certificate extensions of the OIDC issuer: the deprecated raw form cosign's legacy
// path reads, and the DER UTF8String sigstore-go reads.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// localCA makes a root → intermediate → leaf chain in dir: leaf.pem (email SAN subject,
// issuer extensions), chain.pem (intermediate then root), and imports the leaf key for
// cosign as leafcosign.key. It returns the chain PEM.
func (w *signWorld) localCA(t *testing.T, subject, issuer string) string {
	t.Helper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	create := func(tmpl, parent *x509.Certificate, pub, priv any) (*x509.Certificate, []byte) {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, der
	}
	rootKey, interKey, leafKey := newKey(), newKey(), newKey()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xloud test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	root, rootDER := create(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "xloud test intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	inter, interDER := create(interTmpl, root, &interKey.PublicKey, rootKey)
	issuerDER, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{subject}, ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: issuerDER}}}
	_, leafDER := create(leafTmpl, inter, &leafKey.PublicKey, interKey)
	pemFile(t, w.dir, "leaf.pem", "CERTIFICATE", leafDER)
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
	writeFile(t, filepath.Join(w.dir, "chain.pem"), []byte(chain))
	w.importKey(t, "leafcosign", leafKey)
	return chain
}

// otherKeys makes the key types cosign generate-key-pair does not: P-384, P-521, RSA-3072
// and Ed25519, imported for cosign; it returns name → public key PEM.
func (w *signWorld) otherKeys(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, gen := range map[string]func() (crypto.Signer, error){
		"p384":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"p521":    func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"rsa3072": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) },
		"ed25519": func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
	} {
		k, err := gen()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = w.importKey(t, name, k)
	}
	return out
}

// registryGet GETs (or HEADs) path under /v2/ on the registry as who.
func (w *signWorld) registryGet(t *testing.T, method, who, path string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, w.bases[who]+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, b := roundTrip(t, req)
	return resp.StatusCode, b, resp.Header
}

// requireDenied checks a registry answer is 403 with the code DENIED and a message naming
// the reason.
func requireDenied(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	json.Unmarshal(body, &e)
	if status != 403 || len(e.Errors) != 1 || e.Errors[0].Code != "DENIED" || !strings.Contains(e.Errors[0].Message, "requires a signature") {
		t.Fatalf("%s: %d %.300q, want 403 DENIED naming the signing policy", what, status, body)
	}
}
