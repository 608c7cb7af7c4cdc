package registry

import (
	"net/http"
	"strings"
)

// misdirected is the status of a registry request sent to another port: 421 Misdirected
// Request, because OCI clients print the error body of any status but 401 and 404 (oras
// reports a 404 at /v2/ as a bare "not found").
const misdirected = http.StatusMisdirectedRequest

// Elsewhere answers a registry request that came to a port other than the registry's with
// UNSUPPORTED naming the registry's URL, which registryURL gives for the request, so that
// `oras login` or a pull against the wrong port fails and says where to go.
// The refusal is logged and counted like any of the registry's (a Registry with no store
// suffices: only its log and metrics options are used).
func Elsewhere(registryURL func(*http.Request) string, opt Options) http.Handler {
	reg := &Registry{opt: opt}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		reg.writeError(w, r, E(CodeUnsupported).WithStatus(misdirected).WithMessage(
			"this port serves the Image API, not the registry: the registry is at %s", registryURL(r)))
	})
}

// IsRegistryRequest reports whether r is shaped as a Registry API request: a repository's
// blobs, uploads, manifests, tags or referrers, or _catalog; the base /v2/ only when an OCI
// client sends it (ociClient), since the Image API serves its version document there. GET of
// tags/list only, as Glance's image tags path takes PUT and DELETE of a tag named "list".
func IsRegistryRequest(r *http.Request) bool {
	rt, ok := parseRoute(r.URL.Path)
	switch {
	case !ok:
		return false
	case rt.kind == kindBase:
		return ociClient(r)
	case rt.kind == kindCatalog:
		return true
	case rt.kind == kindTags && r.Method != http.MethodGet && r.Method != http.MethodHead:
		return false
	}
	return validName(rt.name)
}

// ociClientAgents are User-Agent fragments of the OCI clients in use; OpenStack's clients
// (keystoneauth1, python-glanceclient, openstacksdk) send none of them.
var ociClientAgents = []string{"oras", "docker", "containerd", "go-containerregistry", "containers/",
	"skopeo", "podman", "buildah", "cosign", "helm", "notation", "regclient", "buildkit", "kaniko", "crane"}

// ociClient reports whether r comes from an OCI client rather than an OpenStack one: no
// Keystone token (X-Auth-Token), and Basic credentials (which no OpenStack client sends) or a
// User-Agent of a known OCI client.
func ociClient(r *http.Request) bool {
	if r.Header.Get("X-Auth-Token") != "" {
		return false
	}
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "basic") {
		return true
	}
	ua := strings.ToLower(r.UserAgent())
	for _, a := range ociClientAgents {
		if strings.Contains(ua, a) {
			return true
		}
	}
	return false
}
