package diskformat

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
)

// A VMDK descriptor is text: header lines (key=value), extent lines naming
// the files that hold the data, and ddb lines. qemu opens whatever files the
// extents name (CVE-2022-47951), so we parse it as cautiously as Glance:
// every line must be one we understand, no extent may name a path, and only
// the single-file create types are allowed. On top of Glance we refuse a
// parent (parentFileNameHint makes qemu open a backing file) and a
// createType given twice, which qemu and Glance could each read differently.

// vmdkCreateTypes are the single-file subformats, lowercased.
var vmdkCreateTypes = map[string]bool{"monolithicsparse": true, "streamoptimized": true}

type vmdkExtent struct {
	sectors uint64
	file    string
}

type vmdkDescriptor struct {
	createType string // as written, "" if absent
	extents    []vmdkExtent
	parent     bool
	invalid    int // lines that are neither header, extent, ddb nor comment
	problems   problems
}

// parseVMDKDescriptor parses descriptor text up to its first NUL. Keys and
// values are compared lowercased, as Glance does.
func parseVMDKDescriptor(b []byte) vmdkDescriptor {
	var d vmdkDescriptor
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if !isASCII(b) {
		d.problems.add(true, "descriptor is not ASCII text")
		return d
	}
	text := string(b)
	lower := strings.ToLower(text)
	d.problems.add(strings.Count(lower, "createtype") > 1, "createType given more than once")
	d.parent = strings.Contains(lower, "parentfilenamehint")
	for line := range strings.SplitSeq(text, "\n") {
		d.line(strings.TrimSpace(line))
	}
	return d
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// line classifies one trimmed line the way Glance does.
func (d *vmdkDescriptor) line(l string) {
	low := strings.ToLower(l)
	key, value, isHeader := strings.Cut(l, "=")
	switch {
	case low == "" || strings.HasPrefix(low, "#"), strings.HasPrefix(low, "ddb"):
	case isHeader && !strings.Contains(key, " "):
		if strings.EqualFold(key, "createType") && d.createType == "" {
			d.createType = strings.Trim(strings.TrimSpace(value), `"`)
		}
	case isExtentLine(low):
		d.extent(l)
	default:
		d.invalid++
	}
}

func isExtentLine(l string) bool {
	access, _, _ := strings.Cut(l, " ")
	return access == "rw" || access == "rdonly" || access == "noaccess"
}

// extent parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
func (d *vmdkDescriptor) extent(l string) {
	d.problems.add(strings.Contains(l, "/"), "extent names a file outside the image: %.64q", l)
	fields := strings.Fields(l)
	if len(fields) < 3 {
		d.problems.add(true, "malformed extent line %.64q", l)
		return
	}
	sectors, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		d.problems.add(true, "malformed extent size %.32q", fields[1])
		return
	}
	file := ""
	if _, rest, ok := strings.Cut(l, `"`); ok {
		file, _, _ = strings.Cut(rest, `"`)
	}
	d.extents = append(d.extents, vmdkExtent{sectors: sectors, file: file})
}

// virtualSize sums the extents, as qemu reports a multi-extent image.
func (d *vmdkDescriptor) virtualSize() (int64, error) {
	var total uint64
	for _, e := range d.extents {
		if e.sectors > (math.MaxInt64/512)-total {
			return 0, errors.New("extent sizes overflow")
		}
		total += e.sectors
	}
	return int64(total * 512), nil
}

// check applies the descriptor rules. embedded is true for the descriptor
// inside a sparse file, false for a descriptor-only file, whose data always
// lives in other files.
func (d *vmdkDescriptor) check(embedded bool) error {
	p := append(problems(nil), d.problems...)
	p.add(d.invalid > 0, "invalid descriptor lines: %d", d.invalid)
	p.add(d.createType == "", "no createType")
	p.add(d.createType != "" && (!embedded || !vmdkCreateTypes[strings.ToLower(d.createType)]),
		"unsupported subformat %.32q: only monolithicSparse and streamOptimized are allowed", d.createType)
	p.add(len(d.extents) == 0, "no extents")
	p.add(d.parent, "image has a parent (parentFileNameHint)")
	return p.err()
}

// vmdkTextProbe is qemu's vmdk_probe for descriptor files: after comment
// and blank (space-only) lines, the first line must be version=1, 2 or 3.
func vmdkTextProbe(b []byte) bool {
	for len(b) > 0 {
		switch b[0] {
		case '#':
			_, b, _ = bytes.Cut(b, []byte("\n"))
			continue
		case ' ':
			b = bytes.TrimLeft(b, " ")
			b = bytes.TrimPrefix(b, []byte("\r"))
			if len(b) == 0 || b[0] != '\n' {
				return false
			}
			b = b[1:]
			continue
		}
		return len(b) >= 10 && string(b[:8]) == "version=" && b[8] >= '1' && b[8] <= '3' &&
			(b[9] == '\n' || (b[9] == '\r' && len(b) >= 11 && b[10] == '\n'))
	}
	return false
}

// looksLikeText is Glance's test for a descriptor file: printable ASCII or
// whitespace (as Python's str.isprintable and str.isspace define them).
func looksLikeText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && !(c >= '\t' && c <= '\r') && !(c >= 0x1c && c <= 0x1f) {
			return false
		}
	}
	return len(b) > 0
}
