package manifest

import (
	"errors"
	"strings"
	"testing"
)

const (
	cfg   = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	layer = `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":3}`
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, ctype, body string
		ok                bool
		want              func(*Manifest) bool
	}{
		{"oci image", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `,"layers":[` + layer + `]}`, true,
			func(m *Manifest) bool {
				return len(m.Blobs) == 2 && m.ArtifactType == "application/vnd.oci.image.config.v1+json"
			}},
		{"type from header", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `}`, true,
			func(m *Manifest) bool { return m.MediaType == MediaTypeOCIManifest }},
		{"index", "", `{"schemaVersion":2,"manifests":[` + strings.Replace(layer, "layer.v1.tar", "manifest.v1+json", 1) + `]}`, true,
			func(m *Manifest) bool { return m.MediaType == MediaTypeOCIIndex && len(m.Manifests) == 1 }},
		{"subject and artifactType", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","artifactType":"a/b","config":` + cfg + `,"subject":` + layer + `}`, true,
			func(m *Manifest) bool { return m.Subject != nil && m.ArtifactType == "a/b" }},
		{"non-distributable layer is not required", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + strings.Replace(layer, "layer.v1.tar", "layer.nondistributable.v1.tar", 1) + `]}`, true,
			func(m *Manifest) bool { return len(m.Blobs) == 1 }},
		{"not json", MediaTypeOCIManifest, `{`, false, nil},
		{"schema 1", "", `{"schemaVersion":1}`, false, nil},
		{"header and body disagree", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `}`, false, nil},
		{"unsupported type", "", `{"schemaVersion":2,"mediaType":"text/plain"}`, false, nil},
		{"no config", MediaTypeOCIManifest, `{"schemaVersion":2,"layers":[]}`, false, nil},
		{"bad digest", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + strings.Replace(cfg, "sha256:4", "sha256:X", 1) + `}`, false, nil},
		{"negative size", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + strings.Replace(cfg, `"size":2`, `"size":-1`, 1) + `}`, false, nil},
		{"data mismatch", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + strings.Replace(cfg, `"size":2`, `"size":2,"data":"YWI="`, 1) + `}`, false, nil},
		{"empty config without artifactType", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + strings.Replace(cfg, "image.config.v1+json", "empty.v1+json", 1) + `}`, false, nil},
		{"index with layers", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[],"layers":[]}`, false, nil},
	}
	for _, c := range cases {
		m, err := Parse(c.ctype, []byte(c.body))
		if c.ok != (err == nil) {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if !c.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", c.name, err)
		}
		if c.ok && !c.want(m) {
			t.Errorf("%s: %+v", c.name, m)
		}
	}
}
