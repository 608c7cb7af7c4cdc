//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// The Image API measurements (issue 4): an image upload through the Image API (Glance v2
// PUT /v2/images/{id}/file, which also computes MD5, sha256 and the containerDisk layer hash
// and publishes the VM-image index) against a plain Registry API blob PUT into the same
// xloud-image server, and the image's download against a Registry API GET of the same blob.

// uploadedImage is an image the Image API PUT phase made.
type uploadedImage struct {
	id   string
	repo string // the repository its index and disk blob went to
	file blobFile
}

// imageInfo is what the benchmark reads of an image record.
type imageInfo struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	Size      *int64  `json:"size"`
	Checksum  *string `json:"checksum"`
	HashAlgo  *string `json:"os_hash_algo"`
	HashValue *string `json:"os_hash_value"`
}

// imageName is the name of run i's image; under --auth none it lands in library/<name>.
func imageName(i int) string { return fmt.Sprintf("regbench-image-%d", i) }

// uploadImage creates a raw/bare image named name (POST /v2/images) and uploads body (size
// bytes) as its data in one PUT with a Content-Length. It returns the image's id and the wall
// time from the create to the PUT's answer, when the image is active. An *os.File body goes
// out with sendfile, as in pushBlob.
func (c *client) uploadImage(ctx context.Context, api, name string, body io.Reader, size int64) (string, time.Duration, error) {
	start := time.Now()
	doc, _ := json.Marshal(map[string]string{"name": name, "disk_format": "raw", "container_format": "bare"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v2/images", bytes.NewReader(doc))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return "", 0, err
	}
	var img imageInfo
	err = json.NewDecoder(resp.Body).Decode(&img)
	resp.Body.Close()
	if err != nil || img.ID == "" {
		return "", 0, fmt.Errorf("create image: no id in the answer (%v)", err)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, api+"/v2/images/"+img.ID+"/file", body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.do(req, http.StatusNoContent)
	if err != nil {
		return img.ID, 0, err
	}
	resp.Body.Close()
	return img.ID, time.Since(start), nil
}

// showImage reads an image record (GET /v2/images/{id}).
func (c *client) showImage(ctx context.Context, api, id string) (imageInfo, error) {
	var img imageInfo
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v2/images/"+id, nil)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return img, err
	}
	defer resp.Body.Close()
	return img, json.NewDecoder(resp.Body).Decode(&img)
}

// head sends a HEAD (with accept, if any) and reports whether the answer was 200.
func (c *client) head(ctx context.Context, url, accept string) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// catalog lists the repositories of a registry (GET /v2/_catalog, one page).
func (c *client) catalog(ctx context.Context, base string) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/_catalog?n=10000", nil)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Repositories []string `json:"repositories"`
	}
	return doc.Repositories, json.NewDecoder(resp.Body).Decode(&doc)
}

// imagePutTarget is one side of the Image API PUT comparison: its own files, one per run.
type imagePutTarget struct {
	name  string
	files []blobFile
	run   func(ctx context.Context, i int, f blobFile) (float64, error)
	out   *[]float64 // MB/s per run
	cpu   *[]float64 // xloud-image's CPU seconds per run
}

// phaseImagePut uploads each run's image file through the Image API and another fresh file
// of the same size as a monolithic Registry API blob PUT, into the same xloud-image server,
// with the PUT phase's cache discipline (page cache dropped, source read back in) before
// each, in an order that rotates each run.
func (b *bench) phaseImagePut(ctx context.Context) error {
	targets := []imagePutTarget{
		{"Image API", b.imageFiles, b.putImage, &b.res.imgPut, &b.res.imgPutCPU},
		{"Registry API", b.regFiles, b.putRegistry(b.xloud, "bench/regput"), &b.res.regPut, &b.res.regPutCPU},
	}
	for i := range b.o.runs {
		for _, t := range rotate(targets, i) {
			f := t.files[i]
			if err := b.prepareWrite(f.path); err != nil {
				return err
			}
			cpu, self := procCPUSeconds(b.xloud.pid()), rusageSeconds(syscall.RUSAGE_SELF)
			sec, err := t.run(ctx, i, f)
			if err != nil {
				return fmt.Errorf("image API PUT run %d, %s: %w", i+1, t.name, err)
			}
			cpu, self = procCPUSeconds(b.xloud.pid())-cpu, rusageSeconds(syscall.RUSAGE_SELF)-self
			v := mbps(int64(b.o.size), sec)
			*t.out = append(*t.out, v)
			*t.cpu = append(*t.cpu, cpu)
			b.logf("Image API PUT run %d %-13s %8.1f MB/s (%.2fs; CPU: xloud-image %.2fs, regbench %.2fs)", i+1, t.name, v, sec, cpu, self)
		}
		v := md5Rate(int64(b.o.size))
		b.res.md5 = append(b.res.md5, v)
		b.logf("Image API PUT run %d MD5 ceiling  %8.1f MB/s (crypto/md5 over %s in memory, one core)", i+1, v, humanBytes(int64(b.o.size)))
	}
	return nil
}

// md5Rate hashes size bytes from memory with crypto/md5 and returns MB/s. MD5 cannot be
// split across cores (each block needs the previous one's state), so no upload that
// computes Glance's checksum on the way in can go faster on this CPU.
func md5Rate(size int64) float64 {
	buf := make([]byte, 16<<20)
	h := md5.New()
	start := time.Now()
	for n := int64(0); n < size; n += int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), size-n)])
	}
	return mbps(size, time.Since(start).Seconds())
}

// putImage uploads run i's file as a new image and returns the seconds from its create to
// the end of its upload; then, untimed, it checks that the image is active with the right
// size and hashes, and that its index is in the registry.
func (b *bench) putImage(ctx context.Context, i int, f blobFile) (float64, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	id, el, err := b.c.uploadImage(ctx, b.xloud.apiBase, imageName(i), file, int64(b.o.size))
	if err != nil {
		return 0, err
	}
	img, err := b.checkImage(ctx, id, imageName(i), f)
	if err != nil {
		return 0, err
	}
	b.images = append(b.images, img)
	return el.Seconds(), nil
}

// checkImage verifies an uploaded image: active, its size, MD5 checksum and sha256
// multihash those of f, and its VM-image index tagged with its id in the registry. It finds
// the image's repository: library/<name> under --auth none, else by searching _catalog.
func (b *bench) checkImage(ctx context.Context, id, name string, f blobFile) (uploadedImage, error) {
	img, err := b.c.showImage(ctx, b.xloud.apiBase, id)
	if err != nil {
		return uploadedImage{}, err
	}
	switch {
	case img.Status != "active":
		return uploadedImage{}, fmt.Errorf("image %s is %s after its upload, want active", id, img.Status)
	case img.Size == nil || *img.Size != int64(b.o.size):
		return uploadedImage{}, fmt.Errorf("image %s: size %v, want %d", id, img.Size, int64(b.o.size))
	case img.Checksum == nil || *img.Checksum != f.md5:
		return uploadedImage{}, fmt.Errorf("image %s: checksum %v, want %s", id, img.Checksum, f.md5)
	case img.HashAlgo == nil || *img.HashAlgo != "sha256" || img.HashValue == nil || "sha256:"+*img.HashValue != f.digest:
		return uploadedImage{}, fmt.Errorf("image %s: os_hash_algo %v, os_hash_value %v; want sha256 and %s (the blob the download is compared with)",
			id, img.HashAlgo, img.HashValue, f.digest)
	}
	repo, err := b.findRepo(ctx, "library/"+name, f.digest)
	if err != nil {
		return uploadedImage{}, fmt.Errorf("image %s: %w", id, err)
	}
	index, err := b.c.head(ctx, b.xloud.base+"/v2/"+repo+"/manifests/"+url.PathEscape(id), manifestAccept)
	if err != nil {
		return uploadedImage{}, err
	}
	if !index {
		return uploadedImage{}, fmt.Errorf("image %s: no manifest tagged %s in %s", id, id, repo)
	}
	return uploadedImage{id: id, repo: repo, file: f}, nil
}

// findRepo returns the repository of xloud-image that holds blob d: guess if it does, else
// the first one in _catalog that does.
func (b *bench) findRepo(ctx context.Context, guess, d string) (string, error) {
	has := func(repo string) (bool, error) {
		return b.c.head(ctx, b.xloud.base+"/v2/"+repo+"/blobs/"+d, "")
	}
	if ok, err := has(guess); ok || err != nil {
		return guess, err
	}
	all, err := b.c.catalog(ctx, b.xloud.base)
	if err != nil {
		return "", err
	}
	for _, repo := range all {
		if ok, err := has(repo); ok || err != nil {
			return repo, err
		}
	}
	return "", fmt.Errorf("disk blob %s is in no repository of _catalog", d)
}

// imageGetRounds is how many downloads per -runs the Image API GET phase makes of each side:
// a download takes a third of a second, and on a shared machine single downloads scatter by
// ±30%, more than the margin the target leaves.
const imageGetRounds = 3

// phaseImageGet downloads the first uploaded image through the Image API (GET
// /v2/images/{id}/file) and the same bytes as a blob through the Registry API (GET
// /v2/<repo>/blobs/<os_hash_value as digest>) from the same server, warm cache.
func (b *bench) phaseImageGet(ctx context.Context) error {
	if len(b.images) == 0 {
		return fmt.Errorf("no image uploaded")
	}
	img := b.images[0]
	targets := []getTarget{
		{"Image API", b.xloud.apiBase + "/v2/images/" + img.id + "/file", &b.res.imgGet, &b.res.imgGetCPU},
		{"Registry API", b.xloud.base + "/v2/" + img.repo + "/blobs/" + img.file.digest, &b.res.regGet, &b.res.regGetCPU},
	}
	return b.measureGets(ctx, "Image API GET", targets, img.file.digest, imageGetRounds*b.o.runs)
}
