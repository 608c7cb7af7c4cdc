package catalog

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// The interoperable import (Glance's POST /v2/images/{id}/import): glance-direct imports
// data staged beforehand (PUT …/stage), web-download fetches it from an http(s) URL. Either
// way the image is importing while the work runs and active after it; a failure puts it back
// to queued with no data, as Glance does.

// Import methods.
const (
	ImportGlanceDirect = "glance-direct"
	ImportWebDownload  = "web-download"
	// ImportCopyImage copies an active image's data to more stores (multi-store only).
	ImportCopyImage = "copy-image"
)

// ImportMethods are the enabled import methods, in the order GET /v2/info/import lists them.
var ImportMethods = []string{ImportGlanceDirect, ImportWebDownload, ImportGlanceDownload}

// ImportMethods are the enabled import methods: copy-image too when there are stores to
// copy to (--store).
func (c *Catalog) ImportMethods() []string {
	if !c.MultiStore {
		return slices.Clone(ImportMethods)
	}
	return []string{ImportGlanceDirect, ImportWebDownload, ImportCopyImage, ImportGlanceDownload}
}

// Stage receives data for a later glance-direct import: queued → uploading, the bytes stored
// as a blob of the image's repository with size, MD5 and multihash computed on the way in,
// nothing published (no manifest, no tag). size is the declared length (-1 when unknown);
// more or fewer bytes is ErrInvalid. Any failure puts the image back to queued.
func (c *Catalog) Stage(ctx context.Context, pr auth.Principal, id string, body io.Reader, size int64) (Image, error) {
	return c.StageTo(ctx, pr, id, "", body, size)
}

// StageTo is Stage into the named store (X-Image-Meta-Store; "": the default store); the
// import then copies from there to its stores. An unknown store is refused at once.
func (c *Catalog) StageTo(ctx context.Context, pr auth.Principal, id, store string, body io.Reader, size int64) (Image, error) {
	store, err := c.chooseStore(store)
	if err != nil {
		return Image{}, err
	}
	project := callerProject(pr)
	limits, err := c.projectLimits(ctx, project)
	if err != nil {
		return Image{}, err
	}
	img, err := c.mutateChecked(ctx, pr, id, auth.ImageModify, func(img *Image) error {
		if img.Status != StatusQueued {
			return errorf(Conflict, "image status is %s, not queued", img.Status)
		}
		img.Status = StatusUploading
		img.Lease = c.node
		img.Reserved = max(size, 0)
		return nil
	}, func(tx meta.Tx, _ Image) error {
		return enforce(tx, project, limits, quotaCheck{LimitStageTotal, sizeDelta(size), max(size, 0)},
			quotaCheck{resource: LimitCountUploading})
	})
	if err != nil {
		return img, err
	}
	out, err := c.stage(ctx, img, store, body, size)
	if err != nil {
		c.requeue(context.WithoutCancel(ctx), img, StatusUploading)
		return img, err
	}
	return out, nil
}

func (c *Catalog) stage(ctx context.Context, img Image, store string, body io.Reader, size int64) (Image, error) {
	repo, err := c.repositoryFor(ctx, img)
	if err != nil {
		return img, err
	}
	data, err := c.storeData(ctx, repo, store, body, size, nil, nil)
	if err != nil {
		return img, err
	}
	var out Image
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, img.ID)
		if err != nil {
			return err
		}
		if cur.Status != StatusUploading || cur.Lease != img.Lease {
			return ErrGone
		}
		next := cur.clone()
		next.Size = &data.size
		next.Staged = &StagedHashes{MD5: data.md5, HashAlgo: data.hashAlgo, HashValue: data.hashValue, Store: store}
		next.Repository, next.DiskDigest = repo, data.disk.String()
		next.Lease = "" // staged: at rest until the import
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		out = next
		return ev.put(tx, &cur, next)
	})
	return out, err
}

// requeue puts an image whose upload, staging or import failed back to queued with no data,
// unless it left status from meanwhile (was deleted) or is no longer this write's (its
// lease was recovered and another write began).
func (c *Catalog) requeue(ctx context.Context, img Image, from Status) {
	err := c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, img.ID)
		if err != nil || cur.Status != from || cur.Lease != img.Lease {
			return err
		}
		next := cur.requeued(c.Now())
		return ev.put(tx, &cur, next)
	})
	if err != nil {
		// The lease janitor requeues it later.
		c.Log.Error("requeue image after a failed write", "image", img.ID, "from", from, "err", err)
	}
}

// ImportRequest is a parsed import call.
type ImportRequest struct {
	Method string // ImportGlanceDirect, ImportWebDownload or ImportGlanceDownload
	URI    string // web-download: where the data is
	// Glance is the remote image of a glance-download.
	Glance *GlanceSource
	// Web fetches web-download URIs; nil: DefaultWebDownloader.
	Web *WebDownloader
	// RequestID is the request that started the import, shown on its task.
	RequestID string
	// task is the legacy import task doing this import, which then makes no task of its own.
	task string
	// Multi-store: the stores asked for (nil: not given), all_stores, all_stores_must_succeed
	// (nil: true) and the X-Image-Meta-Store header.
	Stores               []string
	AllStores            bool
	AllStoresMustSucceed *bool
	HeaderStore          string
	// targets are the stores the import writes, resolved by Import.
	targets []string
}

func (r ImportRequest) mustSucceed() bool {
	return r.AllStoresMustSucceed == nil || *r.AllStoresMustSucceed
}

// Import starts an import: it checks the method and the image's state (glance-direct needs
// staged data, web-download a queued image; both need disk and container formats) and moves
// the image to importing. The returned function does the work — verifies and publishes the
// staged data, or fetches the URI and publishes what came — and the caller runs it in the
// background (Glance answers 202 at once). When the work fails the image goes back to queued
// and the function returns why.
func (c *Catalog) Import(ctx context.Context, pr auth.Principal, id string, req ImportRequest) (func(context.Context) error, error) {
	web := req.Web
	if web == nil {
		web = DefaultWebDownloader
	}
	switch req.Method {
	case ImportGlanceDirect:
	case ImportWebDownload:
		if err := web.Check(ctx, req.URI); err != nil {
			return nil, err
		}
	case ImportGlanceDownload:
		if req.Glance == nil {
			req.Glance = &GlanceSource{}
		}
		if err := req.Glance.check(); err != nil {
			return nil, err
		}
	case ImportCopyImage:
		if !c.MultiStore {
			return nil, errorf(BadRequest, "import method %q is not supported (available: %v)", req.Method, c.ImportMethods())
		}
	default:
		return nil, errorf(BadRequest, "import method %q is not supported (available: %v)", req.Method, c.ImportMethods())
	}
	targets, err := c.importTargets(req)
	if err != nil {
		return nil, err
	}
	req.targets = targets
	act := auth.ImageModify
	if req.Method == ImportCopyImage {
		if req.targets, err = c.copyable(ctx, pr, id, req); err != nil {
			return nil, err
		}
		act = auth.ImageCopy
	}
	// Glance refuses any import of a project already over its storage (images.py, delta 0).
	if err := c.checkQuota(ctx, callerProject(pr), quotaCheck{resource: LimitSizeTotal}); err != nil {
		return nil, err
	}
	input := map[string]any{"image_id": id, "import_req": map[string]any{"method": map[string]string{"name": req.Method, "uri": req.URI}},
		"backend": nil}
	if req.targets != nil { // Glance's task input names the stores written
		input["backend"] = req.targets
	}
	task, err := c.newTask(pr, TaskTypeAPIImport, input, id, req.RequestID)
	if err != nil {
		return nil, err
	}
	task.Status = TaskProcessing
	if req.task != "" { // a legacy import task's own import: that task is the record
		task.ID = req.task
	}
	img, err := c.mutateChecked(ctx, pr, id, act, func(img *Image) error {
		// The lock keeps two imports of one image apart (Glance's os_glance_import_task). A
		// lock on an image no longer importing (or copying) is stale (its import ended
		// without dropping it): busted, as Glance busts one whose task is gone.
		busy := img.Status == StatusImporting || img.Properties[ImportingToStoresProperty] != ""
		if holder := img.Properties[ImportLockProperty]; holder != "" && busy {
			return errorf(Conflict, "Image %s is already being imported (task %s holds %s)", id, holder, ImportLockProperty)
		}
		if err := importable(*img, req.Method); err != nil {
			return err
		}
		if req.Method != ImportCopyImage { // a copy leaves the image active
			img.Status = StatusImporting
		}
		// The writer's lease: if this process stops, another ends the import (lease.go).
		img.Lease = c.node
		img.Properties[ImportLockProperty] = task.ID
		startImportProgress(img, req.targets)
		return nil
	}, func(tx meta.Tx, _ Image) error {
		if req.task != "" {
			return nil
		}
		return putTask(tx, task)
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		err := c.runImport(ctx, pr, img, req, web)
		c.releaseImportLock(context.WithoutCancel(ctx), id, task.ID)
		if req.task == "" {
			c.finishTask(context.WithoutCancel(ctx), task.ID, nil, err)
		}
		return err
	}, nil
}

// releaseImportLock drops an image's import lock if the task still holds it.
func (c *Catalog) releaseImportLock(ctx context.Context, imageID, taskID string) {
	err := c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, imageID)
		if err != nil || cur.Properties[ImportLockProperty] != taskID {
			return err
		}
		next := cur.clone()
		delete(next.Properties, ImportLockProperty)
		return ev.put(tx, &cur, next)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.Log.Error("release the import lock", "image", imageID, "task", taskID, "err", err)
	}
}

// runImport does an import's work and requeues the image when it fails.
func (c *Catalog) runImport(ctx context.Context, pr auth.Principal, img Image, req ImportRequest, web *WebDownloader) error {
	err := c.importQuota(ctx, pr, img, req.Method)
	place := placement{to: req.targets, must: req.mustSucceed(), progress: true}
	switch {
	case err != nil:
	case req.Method == ImportCopyImage:
		// A failed copy leaves the image active in the stores it was in (and those the
		// copy reached); the failure is in os_glance_failed_import and on the task.
		if err := c.copyImage(ctx, img, req); err != nil {
			c.endImportProgress(context.WithoutCancel(ctx), img.ID, req.targets)
			return fmt.Errorf("copy image %s to stores: %w", img.ID, err)
		}
		return nil
	case req.Method == ImportGlanceDirect:
		err = c.importStaged(ctx, pr, img, place)
	case req.Method == ImportGlanceDownload:
		err = c.importGlance(ctx, pr, img, req.Glance, place)
	default:
		err = c.importWeb(ctx, pr, img, web, req.URI, place)
	}
	if err != nil {
		c.endImportProgress(context.WithoutCancel(ctx), img.ID, req.targets)
		c.requeue(context.WithoutCancel(ctx), img, StatusImporting)
		return fmt.Errorf("import image %s (%s): %w", img.ID, req.Method, err)
	}
	return nil
}

// importable applies Glance's import preconditions (ImagesController.import_image).
func importable(img Image, method string) error {
	switch {
	case method == ImportCopyImage && img.Status != StatusActive:
		return errorf(Conflict, "Only images with status active can be targeted for copying")
	case method == ImportCopyImage:
		return nil
	case method == ImportGlanceDirect && img.Status != StatusUploading:
		return errorf(Conflict, "image needs to be staged before 'glance-direct' method can be used")
	case img.Status == StatusActive:
		return errorf(Conflict, "image with status active cannot be target for import")
	case (method == ImportWebDownload || method == ImportGlanceDownload) && img.Status != StatusQueued:
		return errorf(Conflict, "image needs to be in 'queued' state to use '%s' method", method)
	case img.DiskFormat == nil || img.ContainerFormat == nil:
		return errorf(Conflict, "'disk_format' and 'container_format' must be set prior to importing data")
	}
	return nil
}

// importStaged checks the staged blob against the image's disk format and its Glance
// signature, if any (one read, which also hashes the containerDisk layer), and publishes it.
func (c *Catalog) importStaged(ctx context.Context, pr auth.Principal, img Image, place placement) error {
	verifier, err := c.glanceVerifier(ctx, pr, img)
	if err != nil {
		return err
	}
	d, perr := storage.ParseDigest(img.DiskDigest)
	if img.Staged == nil && img.Checksum != nil && img.HashAlgo != nil && img.HashValue != nil {
		// Staged by an older release, which showed the hashes at once.
		img.Staged = &StagedHashes{MD5: *img.Checksum, HashAlgo: *img.HashAlgo, HashValue: *img.HashValue}
	}
	if perr != nil || img.Size == nil || img.Staged == nil {
		return errorf(Conflict, "no staged data")
	}
	f, n, err := c.store.OpenBlob(storage.WithoutCacheFill(ctx), img.Repository, d)
	if err != nil {
		return err
	}
	defer f.Close()
	data := uploaded{repo: img.Repository, disk: d, size: n, md5: img.Staged.MD5,
		hashAlgo: img.Staged.HashAlgo, hashValue: img.Staged.HashValue}
	inspector := diskformat.NewInspector()
	sinks := []io.Writer{inspector}
	if verifier != nil {
		sinks = append(sinks, verifier.h)
	}
	if containerDiskFormat(img) {
		prefix, _ := containerDiskFraming(img, n)
		data.tarHash = sha256.New()
		data.tarHash.Write(prefix)
		sinks = append(sinks, data.tarHash)
	}
	if _, err := io.Copy(io.MultiWriter(sinks...), f); err != nil {
		return fmt.Errorf("read staged data: %w", err)
	}
	report := inspector.Report()
	if err := diskformat.Verify(deref(img.DiskFormat), report); err != nil {
		return refusal(BadData, err)
	}
	if verifier != nil {
		if err := verifier.verify(); err != nil {
			return err
		}
	}
	data.virtualSize, data.detected = report.VirtualSize, report.Format
	if data.stores, err = c.place(ctx, img.ID, d, place); err != nil {
		return err
	}
	if _, err = c.publish(ctx, img, data); err != nil {
		return err
	}
	// The staging store keeps no copy the import did not ask for.
	staged := img.Staged.Store
	if staged == "" {
		staged = c.store.DefaultStore()
	}
	if data.stores != nil && !slices.Contains(data.stores, staged) {
		// The image is active whatever happens here: a copy left behind is GC's when no
		// manifest holds the blob, else only space.
		if err := c.releaseCopy(ctx, img.ID, d, staged); err != nil {
			c.Log.Warn("drop the staged copy of an imported image", "image", img.ID, "store", staged, "err", err)
		}
	}
	return nil
}

// importWeb fetches uri and receives it as an upload would be.
func (c *Catalog) importWeb(ctx context.Context, pr auth.Principal, img Image, web *WebDownloader, uri string, place placement) error {
	body, size, err := web.Fetch(ctx, uri)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = c.receive(ctx, pr, img, body, size, place)
	return err
}

// importQuota is the check of Glance's import flow (api_image_import.assert_quota), after
// the 202: glance-direct brings its staged size to the store total; web-download stages
// first, so the stage total (its size is unknown until fetched: delta 0) and the count of
// uploads apply.
func (c *Catalog) importQuota(ctx context.Context, pr auth.Principal, img Image, method string) error {
	if method == ImportGlanceDirect {
		size := int64(0)
		if img.Size != nil {
			size = *img.Size
		}
		return c.checkQuota(ctx, callerProject(pr), quotaCheck{resource: LimitSizeTotal, delta: sizeDelta(size)})
	}
	return c.checkQuota(ctx, callerProject(pr), quotaCheck{resource: LimitStageTotal}, quotaCheck{resource: LimitCountUploading})
}
