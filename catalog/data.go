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
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/internal/sha256twin"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// MaxImageSize is Glance's image_size_cap (1 TiB).
const MaxImageSize = 1 << 40

// Upload stores an image's data (PUT /v2/images/{id}/file): queued → saving → active, in
// one streaming pass that computes the MD5 checksum, the multihash, the OCI digest and the
// containerDisk layer digest, then publishes the VM-image index. size is the declared length
// (-1 when unknown); more or fewer bytes is ErrInvalid. Any failure puts the image back to
// queued with no data.
func (c *Catalog) Upload(ctx context.Context, pr auth.Principal, id string, body io.Reader, size int64) (Image, error) {
	return c.UploadTo(ctx, pr, id, "", body, size)
}

// UploadTo is Upload into the named store (X-Image-Meta-Store; "": the default store). An
// unknown store is refused before anything changes.
func (c *Catalog) UploadTo(ctx context.Context, pr auth.Principal, id, store string, body io.Reader, size int64) (Image, error) {
	store, err := c.chooseStore(store)
	if err != nil {
		return Image{}, err
	}
	project := callerProject(pr)
	limits, err := c.projectLimits(ctx, project)
	if err != nil {
		return Image{}, err
	}
	img, err := c.mutateChecked(ctx, pr, id, auth.ImageUpload, func(img *Image) error {
		if img.Status != StatusQueued {
			return errorf(Conflict, "image status is %s, not queued", img.Status)
		}
		if img.DiskFormat == nil || img.ContainerFormat == nil {
			return errorf(BadRequest, "properties disk_format and container_format must be set prior to saving data")
		}
		img.Status = StatusSaving
		img.Lease = c.node
		img.Reserved = max(size, 0)
		return nil
	}, func(tx meta.Tx, _ Image) error {
		// Glance's checks (image_data.py upload): usage plus the declared size (0 unknown:
		// the soft limit), then the count of uploads with this one in it. Here both run in
		// the transaction that makes the image saving and reserves its declared size, so
		// concurrent uploads cannot all pass; a refusal leaves it queued, nothing stored.
		return enforce(tx, project, limits, quotaCheck{LimitSizeTotal, sizeDelta(size), max(size, 0)},
			quotaCheck{resource: LimitCountUploading})
	})
	if err != nil {
		return img, err
	}
	out, err := c.receive(ctx, pr, img, body, size, c.placement([]string{store}, true))
	if err != nil {
		c.requeue(context.WithoutCancel(ctx), img, StatusSaving)
		return img, err
	}
	return out, nil
}

// storeData stores an image's bytes as a blob of repo in one streaming pass: the OCI digest,
// the MD5 checksum, the multihash (when it is not the digest) and every extra sink see the
// bytes on the way in. size is the declared length (-1 when unknown): more or fewer bytes is
// ErrInvalid. check, if not nil, may refuse the data before anything is committed.
// layerPrefix, if not nil, is the tar framing in front of the disk in its containerDisk
// layer: the layer's digest is then computed in the same pass, sharing the disk digest's
// message schedule (sha256twin), and data.tarHash holds prefix+disk.
func (c *Catalog) storeData(ctx context.Context, repo, store string, body io.Reader, size int64, check func() error, layerPrefix []byte, extra ...io.Writer) (uploaded, error) {
	md5h := md5.New()
	opt := storage.PutOptions{Max: MaxImageSize, Sinks: append([]io.Writer{md5h}, extra...), Store: store}
	if size >= 0 {
		opt.Max = size
	}
	var multi hash.Hash
	if c.HashAlgo == "sha512" {
		multi = sha512.New()
		opt.Sinks = append(opt.Sinks, multi)
	}
	var twin *sha256twin.Hash
	var layer hash.Hash
	if layerPrefix != nil {
		var err error
		if twin, err = sha256twin.New(layerPrefix); err == nil {
			opt.Hash = twin
		} else {
			// Framing that is not whole blocks cannot share the pass's schedule.
			layer = sha256.New()
			layer.Write(layerPrefix)
			opt.Sinks = append(opt.Sinks, layer)
		}
	}
	opt.Check = func(n int64) error {
		if size >= 0 && n != size {
			return errorf(BadRequest, "size mismatch: %d bytes received, %d declared", n, size)
		}
		if check != nil {
			return check()
		}
		return nil
	}
	d, n, err := c.store.PutBlob(ctx, repo, body, opt)
	if err != nil {
		return uploaded{}, storeRefusal(err, size)
	}
	data := uploaded{repo: repo, disk: d, size: n, md5: hex.EncodeToString(md5h.Sum(nil)),
		hashAlgo: "sha256", hashValue: d.Encoded(), tarHash: layer}
	if twin != nil {
		data.tarHash = twin.Prefixed()
	}
	if multi != nil {
		data.hashAlgo, data.hashValue = "sha512", hex.EncodeToString(multi.Sum(nil))
	}
	return data, nil
}

// storeRefusal gives the client's faults among PutBlob's errors a kind and a message.
func storeRefusal(err error, size int64) error {
	switch {
	case errors.Is(err, storage.ErrTooLarge) && size >= 0:
		return &Error{Kind: BadRequest, Message: fmt.Sprintf("size mismatch: more data than the %d bytes declared", size), Err: err}
	case errors.Is(err, storage.ErrTooLarge):
		return &Error{Kind: TooMany, Message: fmt.Sprintf("image data is larger than the %d byte limit", int64(MaxImageSize)), Err: err}
	case errors.Is(err, storage.ErrIncomplete):
		return &Error{Kind: BadRequest, Message: "the request body could not be read to its end", Err: err}
	}
	return err
}

// receive stores an upload's data, refusing data that is not the declared format, fails
// the safety checks or does not match the image's Glance signature (checked with the
// certificate pr may read), and publishes it. When the size is known up front the
// containerDisk layer is hashed in the same pass.
func (c *Catalog) receive(ctx context.Context, pr auth.Principal, img Image, body io.Reader, size int64, place placement) (Image, error) {
	verifier, err := c.glanceVerifier(ctx, pr, img)
	if err != nil {
		return img, err
	}
	repo, err := c.repositoryFor(ctx, img)
	if err != nil {
		return img, err
	}
	inspector := diskformat.NewInspector()
	sinks := []io.Writer{inspector}
	if verifier != nil {
		sinks = append(sinks, verifier.h)
	}
	var layerPrefix []byte
	if containerDiskFormat(img) && size >= 0 {
		layerPrefix, _ = containerDiskFraming(img, size)
	}
	var report diskformat.Report
	check := func() error {
		report = inspector.Report()
		if err := diskformat.Verify(deref(img.DiskFormat), report); err != nil {
			return refusal(BadData, err)
		}
		if verifier != nil {
			return verifier.verify()
		}
		return nil
	}
	data, err := c.storeData(ctx, repo, place.first(), body, size, check, layerPrefix, sinks...)
	if err != nil {
		return img, err
	}
	if data.stores, err = c.place(ctx, img.ID, data.disk, place); err != nil {
		return img, err
	}
	data.virtualSize, data.detected = report.VirtualSize, report.Format
	return c.publish(ctx, img, data)
}

// placement is where an upload or import puts the data: the stores in order (nil without
// --store) and whether every one must take it.
type placement struct {
	to   []string
	must bool
	// progress: an import, which shows its progress in os_glance_importing_to_stores.
	progress bool
}

// placement names the stores ("" : the default one); nil without --store.
func (c *Catalog) placement(to []string, must bool) placement {
	if !c.MultiStore {
		return placement{}
	}
	out := slices.Clone(to)
	for i, s := range out {
		if s == "" {
			out[i] = c.store.DefaultStore()
		}
	}
	return placement{to: out, must: must}
}

// first is where the bytes go first ("": the default store).
func (p placement) first() string {
	if len(p.to) == 0 {
		return ""
	}
	return p.to[0]
}

// place copies blob d, stored in one of p's stores or elsewhere (staged), to each of p's
// stores, and returns the stores that hold it (nil without --store).
func (c *Catalog) place(ctx context.Context, id string, d digest.Digest, p placement) ([]string, error) {
	if len(p.to) == 0 || (len(p.to) == 1 && !p.progress) {
		return p.to, nil
	}
	return c.placeData(ctx, id, d, p.to, p.must, false)
}

// Open returns an image's data for download: the caller must be allowed to download it
// (a deactivated image: admins only); an image without data is ErrNoData.
func (c *Catalog) Open(ctx context.Context, pr auth.Principal, id string) (Image, storage.ReadSeekCloser, int64, error) {
	img, f, n, _, err := c.OpenSigned(ctx, pr, id)
	return img, f, n, err
}

// OpenSigned is Open, also applying the owning project's signing rule: an image without a
// verified signature is refused under enforce (Forbidden, naming the reason); under warn
// the warning is returned.
func (c *Catalog) OpenSigned(ctx context.Context, pr auth.Principal, id string) (Image, storage.ReadSeekCloser, int64, string, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil {
		return img, nil, 0, "", err
	}
	if img.Status == StatusDeleted && !pr.Admin {
		return img, nil, 0, "", ErrNotFound
	}
	if err := c.allow(ctx, pr, img, ms, auth.ImageDownload); err != nil {
		return img, nil, 0, "", err
	}
	pull, err := c.policy.AllowDownloadSigned(ctx, pr, facts(img, ms))
	if err != nil {
		return img, nil, 0, "", err
	}
	if pull.Denied != "" {
		return img, nil, 0, "", errorf(Forbidden, "image %s is not signed by a key trusted by its project: %s", img.ID, pull.Denied)
	}
	f, n, err := c.openData(ctx, img)
	return img, f, n, pull.Warning, err
}

// openData opens the disk of img.
func (c *Catalog) openData(ctx context.Context, img Image) (storage.ReadSeekCloser, int64, error) {
	if img.DiskDigest == "" || (img.Status != StatusActive && img.Status != StatusDeactivated) {
		return nil, 0, ErrNoData
	}
	d, err := storage.ParseDigest(img.DiskDigest)
	if err != nil {
		return nil, 0, err
	}
	// A read that fills (or hits) the node's cache names the image on the entry.
	f, n, err := c.store.OpenBlob(storage.WithCacheImage(ctx, img.ID), img.Repository, d)
	if err != nil || img.DiskOffset == 0 {
		return f, n, err
	}
	// The disk is a file inside an uncompressed tar layer (a pushed containerDisk).
	ra, ok := f.(io.ReaderAt)
	if !ok || img.Size == nil || img.DiskOffset+*img.Size > n {
		f.Close()
		return nil, 0, fmt.Errorf("disk of image %s: layer cannot be read in place", img.ID)
	}
	return sectionCloser{io.NewSectionReader(ra, img.DiskOffset, *img.Size), f}, *img.Size, nil
}

// sectionCloser is a section of a blob that closes the blob.
type sectionCloser struct {
	*io.SectionReader
	io.Closer
}
