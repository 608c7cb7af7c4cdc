package imageapi

import (
	"cmp"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/xloud/xloud-image/catalog"
)

// parseListQuery reads the query of GET /v2/images (§1.6) into list options; a value that
// does not parse is 400.
func parseListQuery(q url.Values) (catalog.ListOptions, error) {
	var opt catalog.ListOptions
	f := &opt.Filter
	f.Properties = map[string]string{}
	var err error
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch key {
		case "limit":
			n, e := strconv.Atoi(v)
			if e != nil || n < 0 {
				return opt, errorf(http.StatusBadRequest, "limit param must be an integer")
			}
			opt.Limit = min(n, catalog.MaxLimit)
		case "marker":
			opt.Marker = v
		case "sort", "sort_key", "sort_dir":
		case "name":
			f.Names, err = parseInFilter(key, v)
		case "id":
			f.IDs, err = parseInFilter(key, v)
		case "status":
			f.Statuses, err = parseInFilter(key, v)
		case "container_format":
			f.Containers, err = parseInFilter(key, v)
		case "disk_format":
			f.DiskFormats, err = parseInFilter(key, v)
		case "visibility":
			f.Visibility, err = oneOfParam(key, v, "public", "private", "shared", "community", "all")
		case "member_status":
			f.MemberStatus, err = oneOfParam(key, v, "accepted", "pending", "rejected", "all")
		case "owner":
			f.Owner = v
		case "tag":
			f.Tags = vals
		case "size_min":
			f.SizeMin, err = sizeParam(key, v)
		case "size_max":
			f.SizeMax, err = sizeParam(key, v)
		case "os_hidden":
			f.Hidden, err = boolParam(key, strings.ToLower(v))
		case "protected":
			f.Protected, err = boolParam(key, v)
		case "created_at":
			f.Created, err = timeConds(key, vals)
		case "updated_at":
			f.Updated, err = timeConds(key, vals)
		case "checksum":
			f.Checksum = v
		case "os_hash_value":
			f.HashValue = v
		case "changes-since":
			err = errorf(http.StatusBadRequest, "The 'changes-since' filter is no longer available on v2.")
		default:
			f.Properties[key] = v
		}
		if err != nil {
			return opt, err
		}
	}
	opt.Sort, err = parseSort(q)
	return opt, err
}

// parseInFilter reads an exact value or `in:v1,v2` (values holding commas in double quotes);
// any other operator is 400.
func parseInFilter(key, v string) ([]string, error) {
	op, val := splitFilterOp(v)
	switch op {
	case "eq":
		return []string{val}, nil
	case "in":
		list, err := splitQuoted(val)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "Invalid filter value %s. %v", val, err)
		}
		return list, nil
	}
	return nil, errorf(http.StatusBadRequest, "Unable to filter by unknown operator '%s'.", op)
}

// splitFilterOp splits "op:value" as Glance's split_filter_op: no colon, or a value that is
// an ISO 8601 time, is "eq".
func splitFilterOp(v string) (string, string) {
	left, right, ok := strings.Cut(v, ":")
	if !ok {
		return "eq", v
	}
	if _, err := parseISOTime(v); err == nil {
		return "eq", v
	}
	return left, right
}

// splitQuoted splits a comma-separated list whose items may be double-quoted.
func splitQuoted(s string) ([]string, error) {
	var out []string
	for s != "" {
		var item string
		if strings.HasPrefix(s, `"`) {
			end := strings.Index(s[1:], `"`)
			if end < 0 {
				return nil, errorf(http.StatusBadRequest, "unterminated quote")
			}
			item, s = s[1:end+1], s[end+2:]
			if s != "" && !strings.HasPrefix(s, ",") {
				return nil, errorf(http.StatusBadRequest, "a quoted value must be followed by a comma")
			}
			s = strings.TrimPrefix(s, ",")
		} else {
			item, s, _ = strings.Cut(s, ",")
		}
		out = append(out, strings.TrimSpace(item))
	}
	return out, nil
}

func oneOfParam(key, v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", errorf(http.StatusBadRequest, "Invalid %s value: %s (want one of %s).", key, v, strings.Join(allowed, ", "))
}

func sizeParam(key, v string) (*int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, errorf(http.StatusBadRequest, "%s must be a non-negative integer.", key)
	}
	return &n, nil
}

func boolParam(key, v string) (*bool, error) {
	switch v {
	case "true":
		b := true
		return &b, nil
	case "false":
		b := false
		return &b, nil
	}
	return nil, errorf(http.StatusBadRequest, "Invalid value for %s: %s (want true or false).", key, v)
}

// timeConds reads date filters: [gt|gte|lt|lte|eq|neq:]<ISO 8601 time>.
func timeConds(key string, vals []string) ([]catalog.TimeCond, error) {
	var out []catalog.TimeCond
	for _, v := range vals {
		op, val := splitFilterOp(v)
		switch op {
		case "gt", "gte", "lt", "lte", "eq", "neq":
		default:
			return nil, errorf(http.StatusBadRequest, "Unable to filter by unknown operator '%s'.", op)
		}
		t, err := parseISOTime(val)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "Unable to filter on %s: %q is not an ISO 8601 time.", key, val)
		}
		out = append(out, catalog.TimeCond{Op: op, T: t})
	}
	return out, nil
}

// isoLayouts are the ISO 8601 forms accepted in filters; a time without zone is UTC.
var isoLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02",
}

func parseISOTime(s string) (time.Time, error) {
	var err error
	for _, l := range isoLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// parseSort reads sort=k1:dir,k2 (default dir desc) or repeated sort_key/sort_dir; mixing
// the two, unknown keys or directions, and a count of dirs that fits no keys are 400.
func parseSort(q url.Values) ([]catalog.SortKey, error) {
	_, hasSort := q["sort"]
	keys, dirs := q["sort_key"], q["sort_dir"]
	if hasSort && (len(keys) > 0 || len(dirs) > 0) {
		return nil, errorf(http.StatusBadRequest, "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
	}
	var out []catalog.SortKey
	if hasSort {
		for _, item := range strings.Split(q.Get("sort"), ",") {
			k, d, _ := strings.Cut(strings.TrimSpace(item), ":")
			asc, err := sortDir(cmp.Or(d, "desc"))
			if err != nil {
				return nil, err
			}
			if !catalog.ValidSortKey(k) {
				return nil, errorf(http.StatusBadRequest, "Invalid sort key: %s.", k)
			}
			out = append(out, catalog.SortKey{Key: k, Asc: asc})
		}
		return out, nil
	}
	if len(keys) == 0 && len(dirs) > 0 {
		keys = []string{"created_at"}
	}
	if len(dirs) > 1 && len(dirs) != len(keys) {
		return nil, errorf(http.StatusBadRequest, "Number of sort dirs does not match the number of sort keys.")
	}
	for i, k := range keys {
		if !catalog.ValidSortKey(k) {
			return nil, errorf(http.StatusBadRequest, "Invalid sort key: %s.", k)
		}
		d := "desc"
		if len(dirs) == 1 {
			d = dirs[0]
		} else if len(dirs) > 1 {
			d = dirs[i]
		}
		asc, err := sortDir(d)
		if err != nil {
			return nil, err
		}
		out = append(out, catalog.SortKey{Key: k, Asc: asc})
	}
	return out, nil
}

func sortDir(d string) (bool, error) {
	switch d {
	case "asc":
		return true, nil
	case "desc":
		return false, nil
	}
	return false, errorf(http.StatusBadRequest, "Invalid sort direction: %s.", d)
}
