package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxPage bounds one page of tags or repositories; a longer list continues through Link.
const maxPage = 1000

// pageParams reads n and last. n absent means a full page.
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = maxPage
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", E(CodePaginationInvalid).WithMessage("invalid n %q", s)
		}
		if n > maxPage {
			n = maxPage
		}
	}
	return n, last, nil
}

// setNextLink adds the RFC 5988 Link to the next page.
func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}

// getTags lists a repository's tags in byte order with n, last and Link (end-8a, end-8b).
// Only tags of manifests the caller may know of are listed, and Link is set only when
// another such tag follows, so hidden tags leave no trace.
func (reg *Registry) getTags(w http.ResponseWriter, r *http.Request, rt route) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	tags := []string{}
	if n > 0 {
		var more bool
		if tags, more, err = reg.visibleTags(r, rt.name, last, n); err != nil {
			return err
		}
		if more {
			setNextLink(w, "/v2/"+rt.name+"/tags/list", n, tags[len(tags)-1])
		}
	}
	return writeJSON(w, r, "application/json", map[string]any{"name": rt.name, "tags": tags})
}

// visibleTags pages through repo's tags the caller may know of: up to n after last, and
// whether at least one more follows.
func (reg *Registry) visibleTags(r *http.Request, repo, last string, n int) ([]string, bool, error) {
	out := []string{}
	for {
		batch, more, err := reg.store.Tags(r.Context(), repo, last, n+1)
		if err != nil {
			return nil, false, err
		}
		for _, t := range batch {
			d, err := reg.store.ResolveTag(r.Context(), repo, t)
			if err != nil {
				continue // deleted meanwhile
			}
			ok, err := reg.visible(r, repo, d)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				continue
			}
			if len(out) == n {
				return out, true, nil
			}
			out = append(out, t)
		}
		if !more || len(batch) == 0 {
			return out, false, nil
		}
		last = batch[len(batch)-1]
	}
}

// getCatalog lists repositories with n, last and Link.
func (reg *Registry) getCatalog(w http.ResponseWriter, r *http.Request, _ route) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	repos, more, err := reg.visibleRepositories(r.Context(), last, n)
	if err != nil {
		return err
	}
	if more {
		setNextLink(w, "/v2/_catalog", n, repos[len(repos)-1])
	}
	return writeJSON(w, r, "application/json", map[string]any{"repositories": repos})
}

// visibleRepositories pages through the repositories the caller may read: up to n after
// last, and whether more follow.
func (reg *Registry) visibleRepositories(ctx context.Context, last string, n int) ([]string, bool, error) {
	out := []string{}
	for n > 0 {
		batch, more, err := reg.store.Repositories(ctx, last, n)
		if err != nil {
			return nil, false, err
		}
		for i, repo := range batch {
			ok, err := reg.canList(ctx, repo)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				continue
			}
			out = append(out, repo)
			if len(out) == n {
				return out, more || i < len(batch)-1, nil
			}
		}
		if !more {
			break
		}
		last = batch[len(batch)-1]
	}
	return out, false, nil
}

// getReferrers lists the manifests whose subject is a digest, as an image index, with the
// artifactType filter (end-12a, end-12b). An unknown digest has no referrers: 200, empty.
func (reg *Registry) getReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	recs, err := reg.store.Referrers(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	descs := []v1.Descriptor{}
	for _, rec := range recs {
		if filter != "" && rec.ArtifactType != filter {
			continue
		}
		if ok, err := reg.visible(r, rt.name, rec.Digest); err != nil {
			return err
		} else if !ok {
			continue // content the caller may not know of is not listed
		}
		descs = append(descs, v1.Descriptor{
			MediaType: rec.MediaType, Digest: rec.Digest, Size: rec.Size,
			ArtifactType: rec.ArtifactType, Annotations: rec.Annotations,
		})
	}
	index := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	index.SchemaVersion = 2
	return writeJSON(w, r, v1.MediaTypeImageIndex, index)
}
