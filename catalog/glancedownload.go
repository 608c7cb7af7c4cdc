package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// The glance-download import (Glance 2023.2+): fill a queued image from an image of another
// region's Image API. The region's endpoint comes from the caller's own service catalog, the
// caller's token is forwarded, the remote image's formats and a chosen set of its properties
// are taken over, then its data is received as an upload would be.

// ImportGlanceDownload is the import method's name.
const ImportGlanceDownload = "glance-download"

// GlanceDownloadProperties are the property names, or prefixes ending in "_" or ":", that a
// glance-download copies from the remote image: Glance's default
// [glance_download_properties] extra_properties.
var GlanceDownloadProperties = []string{"hw_", "trait:", "os_distro", "os_secure_boot", "os_type"}

// GlanceSource names the remote image of a glance-download import.
type GlanceSource struct {
	ImageID   string // the image's id in the remote region
	Region    string // the region, as the service catalog names it
	Interface string // the endpoint interface: public (default), internal or admin
	// IdentityURL is the Keystone v3 URL whose catalog is asked for the region's endpoint
	// (this server's own identity, or the external Keystone).
	IdentityURL string
	// Token is the caller's token, forwarded to the identity service and the remote region.
	Token string
	// Client makes the requests; nil: a client with glanceDownloadTimeout.
	Client *http.Client
}

// glanceDownloadTimeout bounds each metadata request to the remote region; the data stream
// itself is bounded by the body idle timeout of the remote side and ctx.
const glanceDownloadTimeout = 30 * time.Second

// check applies Glance's synchronous checks of a glance-download request (400s).
func (s *GlanceSource) check() error {
	switch {
	case s.Region == "":
		return errorf(BadRequest, "'glance_region' needs to be set for glance-download import method")
	case s.ImageID == "":
		return errorf(BadRequest, "'glance_image_id' needs to be set for glance-download import method")
	case !ValidID(strings.ToLower(s.ImageID)):
		return errorf(BadRequest, "Remote image id does not look like a UUID: %s", s.ImageID)
	}
	if s.Interface == "" {
		s.Interface = "public"
	}
	return nil
}

func (s *GlanceSource) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: glanceDownloadTimeout}
}

// get sends an authenticated GET and returns the response if its status is 200.
func (s *GlanceSource) get(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("glance-download: %w", err)
	}
	req.Header.Set("X-Auth-Token", s.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("glance-download: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("glance-download: GET %s: %s", u, resp.Status)
	}
	return resp, nil
}

// endpoint finds the Image API of the source's region and interface in the caller's
// service catalog.
func (s *GlanceSource) endpoint(ctx context.Context) (string, error) {
	resp, err := s.get(ctx, s.client(), strings.TrimSuffix(s.IdentityURL, "/")+"/auth/catalog")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var doc struct {
		Catalog []struct {
			Type      string `json:"type"`
			Endpoints []struct {
				Interface string `json:"interface"`
				Region    string `json:"region"`
				RegionID  string `json:"region_id"`
				URL       string `json:"url"`
			} `json:"endpoints"`
		} `json:"catalog"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("glance-download: the service catalog: %w", err)
	}
	for _, svc := range doc.Catalog {
		if svc.Type != "image" {
			continue
		}
		for _, e := range svc.Endpoints {
			if (e.Region == s.Region || e.RegionID == s.Region) && e.Interface == s.Interface {
				return strings.TrimSuffix(e.URL, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("glance-download: no %s image endpoint in region %q of the service catalog", s.Interface, s.Region)
}

// remoteImage is what a glance-download takes from the remote image's record.
type remoteImage struct {
	fields map[string]any
}

func (r remoteImage) str(k string) (string, bool) {
	s, ok := r.fields[k].(string)
	return s, ok
}

// fetch reads the remote image's record and opens its data.
func (s *GlanceSource) fetch(ctx context.Context) (remoteImage, io.ReadCloser, int64, error) {
	var img remoteImage
	base, err := s.endpoint(ctx)
	if err != nil {
		return img, nil, 0, err
	}
	imageURL := base + "/v2/images/" + url.PathEscape(s.ImageID)
	resp, err := s.get(ctx, s.client(), imageURL)
	if err != nil {
		return img, nil, 0, err
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&img.fields)
	resp.Body.Close()
	if err != nil {
		return img, nil, 0, fmt.Errorf("glance-download: the remote image record: %w", err)
	}
	if st, _ := img.str("status"); st != string(StatusActive) {
		return img, nil, 0, fmt.Errorf("glance-download: remote image %s is %s, not active", s.ImageID, st)
	}
	// The data stream may take long: no overall timeout, only ctx.
	stream := *s.client()
	stream.Timeout = 0
	data, err := s.get(ctx, &stream, imageURL+"/file")
	if err != nil {
		return img, nil, 0, err
	}
	return img, data.Body, data.ContentLength, nil
}

// importGlance does a glance-download import's work: the remote record first (formats and
// the chosen properties are taken over while the image is importing), then the data.
func (c *Catalog) importGlance(ctx context.Context, pr auth.Principal, img Image, src *GlanceSource, place placement) error {
	remote, body, size, err := src.fetch(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	var updated Image
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, img.ID)
		if err != nil {
			return err
		}
		if cur.Status != StatusImporting || cur.Lease != img.Lease {
			return ErrGone
		}
		next := cur.clone()
		if f, ok := remote.str("disk_format"); ok {
			next.DiskFormat = &f
		}
		if f, ok := remote.str("container_format"); ok {
			next.ContainerFormat = &f
		}
		for k, v := range remote.fields {
			s, isString := v.(string)
			if isString && glanceDownloadProperty(k) && !ReservedProperty(k) {
				next.Properties[k] = s
			}
		}
		if err := next.validate(); err != nil {
			return err
		}
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		updated = next
		return ev.put(tx, &cur, next)
	})
	if err != nil {
		return err
	}
	if _, err = c.receive(ctx, pr, updated, body, size, place); err != nil {
		c.revertGlanceMetadata(context.WithoutCancel(ctx), img)
	}
	return err
}

// revertGlanceMetadata gives an image whose glance-download failed after its metadata was
// taken over its own formats and properties back, as Glance's flow reverts them.
func (c *Catalog) revertGlanceMetadata(ctx context.Context, before Image) {
	err := c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, before.ID)
		if err != nil || cur.Status != StatusImporting || cur.Lease != before.Lease {
			return err
		}
		next := cur.clone()
		next.DiskFormat, next.ContainerFormat = before.DiskFormat, before.ContainerFormat
		lock := cur.Properties[ImportLockProperty]
		next.Properties = before.clone().Properties
		if lock != "" {
			next.Properties[ImportLockProperty] = lock
		}
		return ev.put(tx, &cur, next)
	})
	if err != nil {
		c.Log.Error("revert the metadata of a failed glance-download", "image", before.ID, "err", err)
	}
}

// glanceDownloadProperty reports whether a remote property is copied.
func glanceDownloadProperty(k string) bool {
	for _, p := range GlanceDownloadProperties {
		if k == p || ((strings.HasSuffix(p, "_") || strings.HasSuffix(p, ":")) && strings.HasPrefix(k, p)) {
			return true
		}
	}
	return false
}
