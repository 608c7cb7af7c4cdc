package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Page sizes (Glance's limit_param_default and api_limit_max).
const (
	DefaultLimit = 25
	MaxLimit     = 1000
)

// Filter selects images; every set field must match.
type Filter struct {
	// Visibility: "" (the default view), public, private, shared, community or all.
	Visibility   string
	MemberStatus string // accepted (default), pending, rejected, all
	Owner        string
	Hidden       *bool // default false: hidden images are left out
	Protected    *bool
	Names        []string // exact, any of
	IDs          []string
	Statuses     []string
	DiskFormats  []string
	Containers   []string
	Tags         []string // all of
	SizeMin      *int64
	SizeMax      *int64
	Created      []TimeCond
	Updated      []TimeCond
	Properties   map[string]string
	Checksum     string
	HashValue    string
}

// TimeCond is a date filter such as gte:2026-01-01T00:00:00Z.
type TimeCond struct {
	Op string // eq, neq, gt, gte, lt, lte
	T  time.Time
}

func (tc TimeCond) match(t time.Time) bool {
	switch tc.Op {
	case "eq":
		return t.Equal(tc.T)
	case "neq":
		return !t.Equal(tc.T)
	case "gt":
		return t.After(tc.T)
	case "gte":
		return !t.Before(tc.T)
	case "lt":
		return t.Before(tc.T)
	case "lte":
		return !t.After(tc.T)
	}
	return false
}

// SortKey is one sort criterion.
type SortKey struct {
	Key string // name, status, container_format, disk_format, size, id, created_at, updated_at
	Asc bool
}

// ValidSortKey reports keys Glance sorts by.
func ValidSortKey(k string) bool {
	switch k {
	case "name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at":
		return true
	}
	return false
}

// ListOptions is one page request.
type ListOptions struct {
	Filter Filter
	Sort   []SortKey // default created_at desc
	Marker string    // id of the last image of the previous page
	Limit  int
}

// List returns a page of the images the caller may see and whether the page was full (so
// a next page may exist). Ordered by creation or by name, either way, it walks the index sets
// of what the caller can see, merged in order, and stops when the page is full: the cost of
// a page depends on the page, not on the size of the catalog. So does a filter on one exact
// name, which walks that name's range. Other orders sort the visible set.
func (c *Catalog) List(ctx context.Context, pr auth.Principal, opt ListOptions) ([]Image, bool, error) {
	if opt.Limit <= 0 || opt.Limit > MaxLimit {
		if opt.Limit <= 0 {
			opt.Limit = DefaultLimit
		} else {
			opt.Limit = MaxLimit
		}
	}
	if opt.Filter.MemberStatus == "" {
		opt.Filter.MemberStatus = MemberAccepted
	}
	projects, err := c.policy.Projects(ctx, pr)
	if err != nil {
		return nil, false, err
	}
	sets := c.candidateSets(pr, projects, opt.Filter)
	var marker *Image
	if opt.Marker != "" {
		m, err := c.Get(ctx, pr, opt.Marker)
		if err != nil {
			return nil, false, errorf(BadRequest, "marker %s not found", opt.Marker)
		}
		marker = &m
	}
	var out []Image
	err = c.meta.View(ctx, func(tx meta.Tx) error {
		keep := func(img Image) (bool, error) { return c.listable(tx, pr, projects, img, opt.Filter) }
		if w, ok := planWalk(sets, opt, marker); ok {
			w.limit = opt.Limit
			out, err = mergeScan(tx, w, keep)
			return err
		}
		all, err := mergeScan(tx, walk{sets: sets, dir: oldestFirst}, keep) // sorted below
		if err != nil {
			return err
		}
		sortImages(all, opt.Sort)
		if opt.Marker != "" {
			for i := range all {
				if all[i].ID == opt.Marker {
					all = all[i+1:]
					break
				}
			}
		}
		if len(all) > opt.Limit {
			all = all[:opt.Limit]
		}
		out = all
		return nil
	})
	full := len(out) == opt.Limit
	for i := range out {
		out[i] = c.readable(pr, out[i])
	}
	return out, full, err
}

// candidateSets are the index sets holding every image the caller could list.
func (c *Catalog) candidateSets(pr auth.Principal, projects []string, f Filter) []string {
	switch {
	case f.Visibility == "public":
		return []string{idxPublic}
	case f.Visibility == "community":
		return []string{idxCommunity}
	case pr.Admin:
		return []string{idxAll}
	}
	var sets []string
	if f.Owner != "" {
		sets = append(sets, idxOwner(f.Owner))
	} else {
		for _, p := range projects {
			sets = append(sets, idxOwner(p))
		}
	}
	if f.Visibility == "" || f.Visibility == "all" {
		sets = append(sets, idxPublic, idxCommunity)
	}
	if f.Visibility == "" || f.Visibility == "all" || f.Visibility == "shared" {
		for _, p := range projects {
			sets = append(sets, idxMember(p))
		}
	}
	return sets
}

// listable decides whether img belongs in the caller's list under f: the field filters,
// then the policy's listing rule, given the memberships of the caller's projects.
func (c *Catalog) listable(tx meta.Tx, pr auth.Principal, projects []string, img Image, f Filter) (bool, error) {
	if !f.match(img) {
		return false, nil
	}
	for k := range f.Properties {
		// A filter on a property the caller may not read matches nothing it could tell.
		if !c.policy.AllowProperty(pr, k, auth.PropertyRead) {
			return false, nil
		}
	}
	fs := facts(img, nil)
	if img.Visibility == VisibilityShared {
		fs.Members = map[string]string{}
		for _, p := range projects {
			var m Member
			err := getJSONTx(tx, keyMember(img.ID, p), &m)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("member %s of image %s: %w", p, img.ID, err)
			}
			fs.Members[p] = m.Status
		}
	}
	return c.policy.ListImage(pr, projects, fs, auth.ImageListing{Visibility: f.Visibility, MemberStatus: f.MemberStatus}), nil
}

// match applies the field filters.
func (f Filter) match(img Image) bool {
	hidden := false
	if f.Hidden != nil {
		hidden = *f.Hidden
	}
	if img.Hidden != hidden {
		return false
	}
	if f.Protected != nil && img.Protected != *f.Protected {
		return false
	}
	if f.Owner != "" && img.Owner != f.Owner {
		return false
	}
	name := ""
	if img.Name != nil {
		name = *img.Name
	}
	if !anyOf(f.Names, name) || !anyOf(f.IDs, img.ID) || !anyOf(f.Statuses, string(img.Status)) ||
		!anyOf(f.DiskFormats, deref(img.DiskFormat)) || !anyOf(f.Containers, deref(img.ContainerFormat)) {
		return false
	}
	for _, t := range f.Tags {
		if len(img.Tags) == 0 || !anyOf(img.Tags, t) { // anyOf lets an empty list match anything
			return false
		}
	}
	if f.SizeMin != nil && (img.Size == nil || *img.Size < *f.SizeMin) {
		return false
	}
	if f.SizeMax != nil && (img.Size == nil || *img.Size > *f.SizeMax) {
		return false
	}
	for _, tc := range f.Created {
		if !tc.match(img.CreatedAt) {
			return false
		}
	}
	for _, tc := range f.Updated {
		if !tc.match(img.UpdatedAt) {
			return false
		}
	}
	for k, v := range f.Properties {
		if img.Properties[k] != v {
			return false
		}
	}
	if f.Checksum != "" && deref(img.Checksum) != f.Checksum {
		return false
	}
	if f.HashValue != "" && deref(img.HashValue) != f.HashValue {
		return false
	}
	return true
}

// anyOf reports whether v is in list; an empty list matches everything.
func anyOf(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// direction is the order a walk visits an index set's members in. The sets hold timeKeys
// (oldest first in byte order) and their name twins hold nameKeys (by name, then oldest
// first), so oldestFirst walks a name twin from A to Z and newestFirst from Z to A.
type direction int8

const (
	// oldestFirst walks members upward in byte order. It is the zero value only so that a
	// walk written before directions had names keeps its meaning; say it anyway.
	oldestFirst direction = iota
	// newestFirst walks members downward in byte order.
	newestFirst
)

// directionOf is the walk direction of an ascending or descending sort.
func directionOf(asc bool) direction {
	if asc {
		return oldestFirst
	}
	return newestFirst
}

// walk is a merged walk over index sets in direction dir: from and to are exclusive bounds
// in that direction ("": open), limit the most images kept (0: all).
type walk struct {
	sets     []string
	from, to string
	dir      direction
	limit    int
}

// past: key a lies beyond b in the walk's direction.
func (w walk) past(a, b string) bool {
	if w.dir == newestFirst {
		return a < b
	}
	return a > b
}

// planWalk finds the index walk that yields the images in the requested order, if one does:
// newest or oldest first over the sets, by name either way over their name twins, and one
// exact name over its range of the twins (oldest first within it). Ties in created_at are
// broken by id in the same direction, as Glance does when one direction is given.
func planWalk(sets []string, opt ListOptions, marker *Image) (walk, bool) {
	key, asc := "created_at", false
	switch {
	case len(opt.Sort) == 0:
	case len(opt.Sort) == 1 && (opt.Sort[0].Key == "created_at" || opt.Sort[0].Key == "name"):
		key, asc = opt.Sort[0].Key, opt.Sort[0].Asc
	default:
		return walk{}, false
	}
	named := make([]string, len(sets))
	for i, s := range sets {
		named[i] = byName(s)
	}
	if f := opt.Filter; len(f.Names) == 1 && !strings.Contains(f.Names[0], "\x00") {
		name := f.Names[0]
		lo, hi := name+"\x00", name+"\x01"
		// Within one name the twin is in creation order, which by name is also Glance's
		// order (its tie-breakers take the direction given).
		w := walk{sets: named, from: lo, to: hi, dir: directionOf(asc)}
		if w.dir == newestFirst {
			w.from, w.to = hi, lo
		}
		if marker != nil {
			mName := deref(marker.Name)
			switch {
			case key == "created_at" || mName == name:
				w.from = lo + timeKey(marker.CreatedAt, marker.ID)
			case (asc && mName > name) || (!asc && mName < name):
				w.from = w.to // the marker is past every image of that name
			}
		}
		return w, true
	}
	if key == "name" {
		w := walk{sets: named, dir: directionOf(asc)}
		if marker != nil {
			w.from = nameKey(*marker)
		}
		return w, true
	}
	w := walk{sets: sets, dir: directionOf(asc)}
	if marker != nil {
		w.from = timeKey(marker.CreatedAt, marker.ID)
	}
	return w, true
}

// mergeScan walks w's sets together in key order, loading each image once and keeping
// those keep accepts.
func mergeScan(tx meta.Tx, w walk, keep func(Image) (bool, error)) ([]Image, error) {
	const batch = 64
	type cursor struct {
		set  string
		buf  []string
		last string
		done bool
	}
	if w.from != "" && w.to != "" && !w.past(w.to, w.from) {
		return nil, nil
	}
	cs := make([]*cursor, len(w.sets))
	for i, s := range w.sets {
		cs[i] = &cursor{set: s, last: w.from}
	}
	fill := func(c *cursor) error {
		if len(c.buf) > 0 || c.done {
			return nil
		}
		rangeOf := tx.SetRange
		if w.dir == newestFirst {
			rangeOf = tx.SetRangeDesc
		}
		b, err := rangeOf(c.set, c.last, batch)
		if err != nil {
			return err
		}
		if len(b) < batch {
			c.done = true
		}
		if len(b) > 0 {
			c.last = b[len(b)-1]
		}
		if w.to != "" {
			if i := slices.IndexFunc(b, func(k string) bool { return !w.past(w.to, k) }); i >= 0 {
				b, c.done = b[:i], true
			}
		}
		c.buf = b
		return nil
	}
	var out []Image
	prev := ""
	for {
		var best *cursor
		for _, c := range cs {
			if err := fill(c); err != nil {
				return nil, err
			}
			if len(c.buf) > 0 && (best == nil || w.past(best.buf[0], c.buf[0])) {
				best = c
			}
		}
		if best == nil {
			return out, nil
		}
		k := best.buf[0]
		best.buf = best.buf[1:]
		if k == prev { // the same image in two sets
			continue
		}
		prev = k
		img, err := getImage(tx, idFromSortKey(k))
		if err != nil {
			continue // a stale index entry
		}
		ok, err := keep(img)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, img)
			if w.limit > 0 && len(out) == w.limit {
				return out, nil
			}
		}
	}
}

// sortImages orders by the keys, then created_at and id as Glance's tie-breakers: in the
// direction of the one key given, else descending.
func sortImages(imgs []Image, keys []SortKey) {
	tieAsc := len(keys) == 1 && keys[0].Asc
	keys = append(slices.Clone(keys), SortKey{Key: "created_at", Asc: tieAsc}, SortKey{Key: "id", Asc: tieAsc})
	sort.SliceStable(imgs, func(i, j int) bool {
		for _, k := range keys {
			c := compareField(imgs[i], imgs[j], k.Key)
			if c == 0 {
				continue
			}
			if k.Asc {
				return c < 0
			}
			return c > 0
		}
		return false
	})
}

func compareField(a, b Image, key string) int {
	switch key {
	case "name":
		return strings.Compare(deref(a.Name), deref(b.Name))
	case "status":
		return strings.Compare(string(a.Status), string(b.Status))
	case "container_format":
		return strings.Compare(deref(a.ContainerFormat), deref(b.ContainerFormat))
	case "disk_format":
		return strings.Compare(deref(a.DiskFormat), deref(b.DiskFormat))
	case "size":
		return compareInt(a.Size, b.Size)
	case "id":
		return strings.Compare(a.ID, b.ID)
	case "created_at":
		return a.CreatedAt.Compare(b.CreatedAt)
	case "updated_at":
		return a.UpdatedAt.Compare(b.UpdatedAt)
	}
	return 0
}

func compareInt(a, b *int64) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	case *a < *b:
		return -1
	case *a > *b:
		return 1
	}
	return 0
}
