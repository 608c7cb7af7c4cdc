package imageapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// uploadImageData is PUT /v2/images/{id}/file (§1.7): the body (with a length or chunked)
// becomes the image's data; 204. A failed upload leaves the image queued with no data.
func (a *API) uploadImageData(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	size, err := uploadSize(r)
	if err != nil {
		return err
	}
	store := r.Header.Get("X-Image-Meta-Store")
	if _, err := a.cat.UploadTo(r.Context(), pr, r.PathValue("id"), store, r.Body, size); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// uploadSize checks an upload's Content-Type (application/octet-stream, else 415) and
// returns its declared size: x-openstack-image-size, else Content-Length, else -1.
func uploadSize(r *http.Request) (int64, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/octet-stream" {
		return 0, errorf(http.StatusUnsupportedMediaType, "The request media type %s is not supported by this server; image data must be sent as application/octet-stream.", orNone(mt))
	}
	size := r.ContentLength
	if h := r.Header.Get("X-Openstack-Image-Size"); h != "" {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil || n < 0 {
			return 0, errorf(http.StatusBadRequest, "x-openstack-image-size must be a non-negative integer.")
		}
		size = n
	}
	if size > catalog.MaxImageSize {
		return 0, errorf(http.StatusRequestEntityTooLarge, "Image size %d exceeds the limit of %d bytes.", size, int64(catalog.MaxImageSize))
	}
	return size, nil
}

func orNone(mt string) string {
	if mt == "" {
		return "(none)"
	}
	return mt
}

// downloadImageData is GET /v2/images/{id}/file (§1.7): 200 with the data, 206 for a
// single Range, 416 for an unsatisfiable one, 204 when the image has no data; Content-MD5
// is the hex MD5 of the whole image.
func (a *API) downloadImageData(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	img, f, size, warn, err := a.cat.OpenSigned(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	if warn != "" {
		w.Header().Set("Warning", `299 - "`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(warn)+`"`)
		a.opt.Metrics.SignatureWarning("image")
	}
	defer f.Close()
	start, end, partial, err := parseRange(r, size)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if img.Checksum != nil {
		h.Set("Content-MD5", *img.Checksum)
	}
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	}
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return err
		}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		// An error here is the client going away. To the end of a stream from a remote
		// store, the stream copies itself (socket to socket on S3); a file goes out with
		// sendfile either way.
		if _, isFile := f.(*os.File); !isFile && end == size {
			io.Copy(w, f)
		} else {
			io.CopyN(w, f, end-start)
		}
	}
	return nil
}

var (
	rangeRE        = regexp.MustCompile(`^bytes=(\d*)-(\d*)$`)
	contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)
)

// parseRange reads the one byte range a download may ask for — Range: bytes=a-b, a- or -n,
// or (for legacy clients) a request Content-Range: bytes a-b/* — and returns [start, end)
// within size. Several ranges are 400; a range that does not parse or starts past the end
// is 416. Without a range it is the whole image.
func parseRange(r *http.Request, size int64) (int64, int64, bool, error) {
	spec := strings.TrimSpace(r.Header.Get("Range"))
	legacy := strings.TrimSpace(r.Header.Get("Content-Range"))
	if spec == "" && legacy == "" {
		return 0, size, false, nil
	}
	unsatisfiable := errorf(http.StatusRequestedRangeNotSatisfiable, "Requested range not satisfiable.").
		withHeader("Content-Range", fmt.Sprintf("bytes */%d", size))
	if strings.Contains(spec, ",") {
		return 0, 0, false, errorf(http.StatusBadRequest, "Only a single byte range may be requested.")
	}
	var start, end int64
	var err1, err2 error
	if spec != "" {
		m := rangeRE.FindStringSubmatch(spec)
		if m == nil || m[1] == "" && m[2] == "" {
			return 0, 0, false, unsatisfiable
		}
		switch {
		case m[1] == "": // suffix: the last n bytes
			var n int64
			n, err1 = strconv.ParseInt(m[2], 10, 64)
			start, end = max(size-n, 0), size
			if n == 0 {
				return 0, 0, false, unsatisfiable
			}
		case m[2] == "":
			start, err1 = strconv.ParseInt(m[1], 10, 64)
			end = size
		default:
			start, err1 = strconv.ParseInt(m[1], 10, 64)
			end, err2 = strconv.ParseInt(m[2], 10, 64)
			end = min(end+1, size)
			if err2 == nil && end <= start && start < size {
				return 0, 0, false, unsatisfiable
			}
		}
	} else {
		m := contentRangeRE.FindStringSubmatch(legacy)
		if m == nil {
			return 0, 0, false, unsatisfiable
		}
		start, err1 = strconv.ParseInt(m[1], 10, 64)
		end, err2 = strconv.ParseInt(m[2], 10, 64)
		end = min(end+1, size)
	}
	if errors.Join(err1, err2) != nil || start >= size || end <= start {
		return 0, 0, false, unsatisfiable
	}
	return start, end, true, nil
}
