package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// bootConfig is what boot-args needs: OpenStack credentials (the OS_* variables of the
// openstack CLI, or flags) and what to print.
type bootConfig struct {
	AuthURL, Username, Password, Project, UserDomain, ProjectDomain, Token string
	ImageURL, CACert, Overlay                                              string
	TTL                                                                    int
}

// cmdBootArgs is `xloud-image boot-args IMAGE`: it asks the Image API for a signed URL of
// IMAGE (id or name) and prints the qemu-img line that makes a copy-on-write overlay over it
// and the qemu-system-x86_64 line that boots the overlay, so a VM boots without downloading
// the image.
func cmdBootArgs(args []string) error {
	fs := flag.NewFlagSet("boot-args", flag.ContinueOnError)
	var c bootConfig
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.AuthURL, "os-auth-url", env("OS_AUTH_URL", ""), "Keystone v3 URL (OS_AUTH_URL)")
	fs.StringVar(&c.Username, "os-username", env("OS_USERNAME", ""), "user name (OS_USERNAME)")
	fs.StringVar(&c.Password, "os-password", env("OS_PASSWORD", ""), "password (OS_PASSWORD)")
	fs.StringVar(&c.Project, "os-project-name", env("OS_PROJECT_NAME", ""), "project to scope the token to (OS_PROJECT_NAME)")
	fs.StringVar(&c.UserDomain, "os-user-domain-name", env("OS_USER_DOMAIN_NAME", "Default"), "(OS_USER_DOMAIN_NAME)")
	fs.StringVar(&c.ProjectDomain, "os-project-domain-name", env("OS_PROJECT_DOMAIN_NAME", "Default"), "(OS_PROJECT_DOMAIN_NAME)")
	fs.StringVar(&c.Token, "os-token", env("OS_TOKEN", ""), "a Keystone token instead of a password (OS_TOKEN; needs --os-image-url)")
	fs.StringVar(&c.ImageURL, "os-image-url", env("OS_IMAGE_URL", ""), "Image API endpoint (default: the service catalog's image endpoint)")
	fs.StringVar(&c.CACert, "os-cacert", env("OS_CACERT", ""), "PEM CA bundle for HTTPS (OS_CACERT)")
	fs.StringVar(&c.Overlay, "overlay", "", "overlay file name (default: <image id>.qcow2)")
	fs.IntVar(&c.TTL, "ttl", 0, "URL life in seconds (default: the server's, 1 hour)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: xloud-image boot-args [flags] IMAGE\n\nPrints the qemu-img and qemu-system-x86_64 lines that boot IMAGE (id or name) from a signed URL, without downloading it.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("one IMAGE (id or name) expected")
	}
	out, err := bootArgs(c, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}

// bootClient talks to the Image API with a Keystone token.
type bootClient struct {
	hc    *http.Client
	token string
	api   string
}

func bootArgs(c bootConfig, image string) (string, error) {
	hc, err := httpClient(c.CACert)
	if err != nil {
		return "", err
	}
	bc := &bootClient{hc: hc, token: c.Token, api: strings.TrimSuffix(c.ImageURL, "/")}
	if bc.token == "" {
		if err := bc.login(c); err != nil {
			return "", err
		}
	}
	if bc.api == "" {
		return "", fmt.Errorf("no Image API endpoint: give --os-image-url (OS_IMAGE_URL)")
	}
	img, err := bc.find(image)
	if err != nil {
		return "", err
	}
	if img.DiskFormat != "qcow2" && img.DiskFormat != "raw" {
		return "", fmt.Errorf("image %s is %s: qemu boots qcow2 and raw images in place", img.ID, img.DiskFormat)
	}
	body := []byte("{}")
	if c.TTL > 0 {
		body = fmt.Appendf(nil, `{"ttl":%d}`, c.TTL)
	}
	var u struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := bc.call("POST", "/v2/images/"+img.ID+"/actions/url", body, &u); err != nil {
		return "", fmt.Errorf("signed URL of image %s: %w", img.ID, err)
	}
	overlay := c.Overlay
	if overlay == "" {
		overlay = img.ID + ".qcow2"
	}
	return bootLines(u.URL, u.ExpiresAt, img.DiskFormat, overlay)
}

// bootLines renders the two command lines. The URL is made of URL-safe characters only, so
// it sits in single quotes unchanged; anything else is refused rather than quoted wrongly.
func bootLines(signed, expires, format, overlay string) (string, error) {
	if !safeURL.MatchString(signed) {
		return "", fmt.Errorf("the server answered a URL with unexpected characters: %q", signed)
	}
	if !safeURL.MatchString(overlay) {
		return "", fmt.Errorf("overlay name %q: use letters, digits and ./_-", overlay)
	}
	driver, _, _ := strings.Cut(signed, ":")
	backing, _ := json.Marshal(map[string]any{"file.driver": driver, "file.url": signed, "file.readahead": curlReadahead})
	var b strings.Builder
	fmt.Fprintf(&b, "# the URL expires at %s; the overlay needs it until then (and qemu re-reads it at every start)\n", expires)
	if driver == "https" {
		b.WriteString("# over HTTPS qemu (libcurl) verifies the server against the system CA bundle\n")
	}
	fmt.Fprintf(&b, "qemu-img create -f qcow2 -b 'json:%s' -F %s %s\n", backing, format, overlay)
	fmt.Fprintf(&b, "qemu-system-x86_64 -machine accel=kvm:tcg -m 2048 -drive file=%s,format=qcow2,if=virtio,cache=writeback\n", overlay)
	return b.String(), nil
}

// curlReadahead is the readahead (bytes) of qemu's curl driver in the recipe, the one
// scripts/bootbench.sh measures: none, as a guest reads ahead itself and qemu's default
// (256 KiB per request) would serve many times the bytes a boot reads.
const curlReadahead = 0

var safeURL = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$`)

func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: time.Minute}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// login gets a project-scoped token with the password and, when no Image API endpoint was
// given, finds the image endpoint in the service catalog.
func (bc *bootClient) login(c bootConfig) error {
	if c.AuthURL == "" || c.Username == "" || c.Password == "" {
		return fmt.Errorf("credentials needed: OS_AUTH_URL, OS_USERNAME, OS_PASSWORD (and OS_PROJECT_NAME), or OS_TOKEN with OS_IMAGE_URL")
	}
	req := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": c.Username, "password": c.Password, "domain": map[string]string{"name": c.UserDomain}}}},
	}}
	if c.Project != "" {
		req["auth"].(map[string]any)["scope"] = map[string]any{"project": map[string]any{
			"name": c.Project, "domain": map[string]string{"name": c.ProjectDomain}}}
	}
	body, _ := json.Marshal(req)
	base := strings.TrimSuffix(strings.TrimSuffix(c.AuthURL, "/"), "/v3")
	resp, err := bc.hc.Post(base+"/v3/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("sign in at %s: %s: %s", base, resp.Status, bytes.TrimSpace(b))
	}
	bc.token = resp.Header.Get("X-Subject-Token")
	if bc.api != "" {
		return nil
	}
	var tok struct {
		Token struct {
			Catalog []struct {
				Type      string `json:"type"`
				Endpoints []struct {
					Interface string `json:"interface"`
					URL       string `json:"url"`
				} `json:"endpoints"`
			} `json:"catalog"`
		} `json:"token"`
	}
	json.Unmarshal(b, &tok)
	for _, s := range tok.Token.Catalog {
		for _, e := range s.Endpoints {
			if s.Type == "image" && e.Interface == "public" {
				bc.api = strings.TrimSuffix(e.URL, "/")
			}
		}
	}
	return nil
}

type bootImage struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	DiskFormat string `json:"disk_format"`
}

// find resolves IMAGE: an id, else a unique name.
func (bc *bootClient) find(image string) (bootImage, error) {
	var img bootImage
	err := bc.call("GET", "/v2/images/"+url.PathEscape(image), nil, &img)
	if err == nil {
		return img, nil
	}
	var list struct {
		Images []bootImage `json:"images"`
	}
	if err := bc.call("GET", "/v2/images?name="+url.QueryEscape(image), nil, &list); err != nil {
		return img, err
	}
	switch len(list.Images) {
	case 0:
		return img, fmt.Errorf("no image with id or name %q", image)
	case 1:
		return list.Images[0], nil
	}
	return img, fmt.Errorf("%d images are named %q: give the id", len(list.Images), image)
}

func (bc *bootClient) call(method, path string, body []byte, out any) error {
	req, err := http.NewRequest(method, bc.api+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", bc.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := bc.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}
