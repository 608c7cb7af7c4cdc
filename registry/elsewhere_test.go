package registry

import (
	"net/http/httptest"
	"testing"
)

// TestIsRegistryRequest: the requests another port points to the registry are the
// registry-shaped ones; the Image API's paths, and /v2/ from an OpenStack client or with a
// Keystone token, are not.
func TestIsRegistryRequest(t *testing.T) {
	digest := "sha256:" + "ab12"
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         bool
	}{
		{"GET", "/v2/_catalog", nil, true},
		{"HEAD", "/v2/team/app/manifests/v1", nil, true},
		{"DELETE", "/v2/team/app/manifests/" + digest, nil, true},
		{"GET", "/v2/team/app/blobs/" + digest, nil, true},
		{"POST", "/v2/team/app/blobs/uploads/", nil, true},
		{"PUT", "/v2/team/app/blobs/uploads/abc", nil, true},
		{"GET", "/v2/team/app/tags/list", nil, true},
		{"GET", "/v2/team/app/referrers/" + digest, nil, true},
		{"GET", "/v2/", map[string]string{"User-Agent": "oras/1.3.6"}, true},
		{"GET", "/v2", map[string]string{"User-Agent": "containerd/2.0.0"}, true},
		{"GET", "/v2/", map[string]string{"User-Agent": "containers/5.34 (github.com/containers/image)"}, true},
		{"GET", "/v2/", map[string]string{"Authorization": "basic eDp5"}, true},
		{"GET", "/v2/", nil, false},
		{"GET", "/v2/", map[string]string{"User-Agent": "python-glanceclient"}, false},
		{"GET", "/v2/", map[string]string{"User-Agent": "oras/1.3.6", "X-Auth-Token": "t"}, false},
		{"GET", "/v2/images", nil, false},
		{"GET", "/v2/images/0b1e39a0-6e5f-4d32-9a57-2f3c7ad9b1c4", nil, false},
		{"PUT", "/v2/images/0b1e39a0-6e5f-4d32-9a57-2f3c7ad9b1c4/tags/list", nil, false},
		{"DELETE", "/v2/images/0b1e39a0-6e5f-4d32-9a57-2f3c7ad9b1c4/tags/list", nil, false},
		{"GET", "/v2/images/0b1e39a0-6e5f-4d32-9a57-2f3c7ad9b1c4/members", nil, false},
		{"GET", "/v2/schemas/image", nil, false},
		{"GET", "/v2/Upper/manifests/v1", nil, false}, // not a repository name
		{"GET", "/", map[string]string{"User-Agent": "oras/1.3.6"}, false},
		{"GET", "/versions", nil, false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if got := IsRegistryRequest(r); got != tc.want {
			t.Errorf("IsRegistryRequest(%s %s %v) = %v, want %v", tc.method, tc.path, tc.hdr, got, tc.want)
		}
	}
}
