package catalog

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/storage"
)

// ErrNoData means an image has no data to download (Glance answers 204).
var ErrNoData = errors.New("image has no data")

// ErrBadData means the data is not what the image declares or fails the safety checks
// (Glance 2025.1 answers 415); nothing is stored.
var ErrBadData = errors.New("image data refused")

// MaxImageSize is Glance's image_size_cap (1 TiB).
const MaxImageSize = 1 << 40

// Upload stores an image's data (PUT /v2/images/{id}/file): queued → saving → active, in
// one streaming pass that computes the MD5 checksum, the multihash, the OCI digest and the
// containerDisk layer digest, then publishes the VM-image index. size is the declared length
// (-1 when unknown); more or fewer bytes is ErrInvalid. Any failure puts the image back to
// queued with no data.
func (c *Catalog) Upload(ctx context.Context, pr auth.Principal, id string, body io.Reader, size int64) (Image, error) {
	img, err := c.mutate(ctx, pr, id, auth.ImageUpload, func(img *Image) error {
		if img.Status != StatusQueued {
			return fmt.Errorf("%w: image status is %s, not queued", ErrConflict, img.Status)
		}
		if img.DiskFormat == nil || img.ContainerFormat == nil {
			return fmt.Errorf("%w: properties disk_format and container_format must be set prior to saving data", ErrInvalid)
		}
		img.Status = StatusSaving
		return nil
	})
	if err != nil {
		return img, err
	}
	out, err := c.receive(ctx, img, body, size)
	if err != nil {
		c.requeue(context.WithoutCancel(ctx), id, StatusSaving)
		return img, err
	}
	return out, nil
}

// hashes computed while the data streams in.
type dataHashes struct {
	md5   hash.Hash
	multi hash.Hash // nil when os_hash_algo is sha256: the OCI digest is the multihash
	tar   hash.Hash // the containerDisk layer, when the size is known up front
}

func (c *Catalog) receive(ctx context.Context, img Image, body io.Reader, size int64) (Image, error) {
	repo, err := c.repositoryFor(ctx, img)
	if err != nil {
		return img, err
	}
	hs := dataHashes{md5: md5.New()}
	sinks := []io.Writer{hs.md5}
	if c.HashAlgo == "sha512" {
		hs.multi = sha512.New()
		sinks = append(sinks, hs.multi)
	}
	cd := containerDiskFormat(img)
	var prefix []byte
	if cd && size >= 0 {
		prefix, _ = containerDiskFraming(img, size)
		hs.tar = sha256.New()
		hs.tar.Write(prefix)
		sinks = append(sinks, hs.tar)
	}
	inspector := diskformat.NewInspector()
	sinks = append(sinks, inspector)
	max := int64(MaxImageSize)
	if size >= 0 {
		max = size
	}
	// The data must be what the image says it is, and safe, before anything is committed.
	var report diskformat.Report
	check := func(n int64) error {
		if size >= 0 && n != size {
			return fmt.Errorf("%w: size mismatch: %d bytes received, %d declared", ErrInvalid, n, size)
		}
		report = inspector.Report()
		if err := diskformat.Verify(deref(img.DiskFormat), report); err != nil {
			return fmt.Errorf("%w: %v", ErrBadData, err)
		}
		return nil
	}
	d, n, err := c.store.PutBlob(ctx, repo, body, max, check, sinks...)
	if err != nil {
		if errors.Is(err, storage.ErrTooLarge) && size >= 0 {
			return img, fmt.Errorf("%w: size mismatch: more data than the %d bytes declared", ErrInvalid, size)
		}
		return img, err
	}
	data := uploaded{repo: repo, disk: d, size: n, md5: hex.EncodeToString(hs.md5.Sum(nil)), virtualSize: report.VirtualSize}
	if hs.multi != nil {
		data.hashAlgo, data.hashValue = "sha512", hex.EncodeToString(hs.multi.Sum(nil))
	} else {
		data.hashAlgo, data.hashValue = "sha256", d.Encoded()
	}
	if hs.tar != nil {
		data.tarHash = hs.tar
	}
	return c.publish(ctx, img, data)
}

// Open returns an image's data for download: the caller must be allowed to download it
// (a deactivated image: admins only); an image without data is ErrNoData.
func (c *Catalog) Open(ctx context.Context, pr auth.Principal, id string) (Image, storage.ReadSeekCloser, int64, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil {
		return img, nil, 0, err
	}
	if img.Status == StatusDeleted && !pr.Admin {
		return img, nil, 0, ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageDownload); err != nil {
		return img, nil, 0, err
	}
	if img.DiskDigest == "" || (img.Status != StatusActive && img.Status != StatusDeactivated) {
		return img, nil, 0, ErrNoData
	}
	d, err := storage.ParseDigest(img.DiskDigest)
	if err != nil {
		return img, nil, 0, err
	}
	f, n, err := c.store.OpenBlob(ctx, img.Repository, d)
	if err != nil || img.DiskOffset == 0 {
		return img, f, n, err
	}
	// The disk is a file inside an uncompressed tar layer (a pushed containerDisk).
	ra, ok := f.(io.ReaderAt)
	if !ok || img.Size == nil || img.DiskOffset+*img.Size > n {
		f.Close()
		return img, nil, 0, fmt.Errorf("disk of image %s: layer cannot be read in place", img.ID)
	}
	return img, sectionCloser{io.NewSectionReader(ra, img.DiskOffset, *img.Size), f}, *img.Size, nil
}

// sectionCloser is a section of a blob that closes the blob.
type sectionCloser struct {
	*io.SectionReader
	io.Closer
}
