package catalog

import (
	"archive/tar"
	"path"
	"strings"
)

// unpackTree follows what unpacking a runnable image's layers in order leaves at disk/ (the
// way containerd, CRI-O and `tar -x` do it: paths clamped to the root, parent symlinks
// followed, a later entry replacing an earlier one, .wh. whiteouts removing lower entries),
// without holding any file content. Only what KubeVirt reads matters: the files under /disk.
// Everything ambiguous there is refused, since consumers disagree on it.
type unpackTree struct {
	links   map[string]string      // symlinks anywhere in the tree: path -> target
	disks   map[string]*pushedDisk // regular files under /disk
	touched bool                   // some entry reached /disk or below
	layer   map[string]bool        // /disk paths the current layer wrote
	layerLn map[string]bool        // symlinks the current layer wrote
}

// diskRoot is where a containerDisk keeps its disk file (KubeVirt's /disk).
const diskRoot = "/disk"

func newUnpackTree() *unpackTree {
	return &unpackTree{links: map[string]string{}, disks: map[string]*pushedDisk{}}
}

func inDisk(p string) bool { return p == diskRoot || strings.HasPrefix(p, diskRoot+"/") }

// under reports whether p is dir or lies below it.
func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// startLayer begins the next layer: whiteouts in it apply to what lower layers left.
func (u *unpackTree) startLayer() { u.layer, u.layerLn = map[string]bool{}, map[string]bool{} }

// resolve follows symlinks through every component of the clean absolute path p, clamping
// `..` at the root, as containerd's fs.RootPath does for the parent of each entry.
func (u *unpackTree) resolve(p string) (string, error) {
	out, rest, hops := "/", strings.Split(p, "/"), 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			out = path.Dir(out)
			continue
		}
		next := path.Join(out, c)
		target, ok := u.links[next]
		if !ok {
			out = next
			continue
		}
		if hops++; hops > 255 {
			return "", errorf(BadData, "too many symlinks resolving %s", p)
		}
		if path.IsAbs(target) {
			out = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return out, nil
}

// place returns where entry hdr lands: its clean name and that name with the symlinks of
// its parent directories followed.
func (u *unpackTree) place(hdr *tar.Header) (name, landed string, err error) {
	name = path.Clean("/" + hdr.Name)
	dir, base := path.Split(name)
	if base == "" {
		return name, name, nil // the root itself
	}
	parent, err := u.resolve(dir)
	if err != nil {
		return "", "", err
	}
	return name, path.Join(parent, base), nil
}

// whiteout applies a .wh. entry landed at p (in its parent directory), reporting whether hdr
// was one. Whiteouts apply to lower layers only (OCI image-spec); one naming something this
// layer wrote under /disk is refused, as containerd would remove it and the spec keep it.
func (u *unpackTree) whiteout(p string) (bool, error) {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	switch {
	case base == ".wh..wh..opq":
		u.touched = u.touched || inDisk(dir)
		u.remove(dir, false)
		return true, nil
	case strings.HasPrefix(base, ".wh."):
		target := path.Join(dir, base[len(".wh."):])
		u.touched = u.touched || inDisk(target)
		for q := range u.layer {
			if under(q, target) {
				return true, errorf(BadData, "whiteout %s in the layer that wrote %s", p, q)
			}
		}
		u.remove(target, true)
		return true, nil
	}
	return false, nil
}

// remove forgets what lies below dir (and dir itself if self), except what this layer wrote:
// whiteouts hide lower layers only. (containerd's plain whiteout also removes a symlink the
// same layer wrote; keeping it can only make later entries look as if written through it.)
func (u *unpackTree) remove(dir string, self bool) {
	for p := range u.disks {
		if under(p, dir) && (self || p != dir) && !u.layer[p] {
			delete(u.disks, p)
		}
	}
	for p := range u.links {
		if under(p, dir) && (self || p != dir) && !u.layerLn[p] {
			delete(u.links, p)
		}
	}
}

// entry records a non-whiteout entry that landed at p and checks what it does under /disk:
// only directory /disk itself and regular files directly in it, each path once.
func (u *unpackTree) entry(hdr *tar.Header, name, p string) error {
	delete(u.links, p) // whatever was at p is replaced
	if hdr.Typeflag == tar.TypeSymlink {
		u.links[p], u.layerLn[p] = hdr.Linkname, true
	}
	if hdr.Typeflag == tar.TypeLink {
		if t, ok := u.links[path.Clean("/"+hdr.Linkname)]; ok {
			u.links[p], u.layerLn[p] = t, true // a hard link to a symlink is that symlink
		}
	}
	if !inDisk(p) {
		return nil
	}
	u.touched = true
	switch {
	case name != p:
		return errorf(BadData, "%s lands in %s through a symlink", hdr.Name, p)
	case hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink:
		return errorf(BadData, "link %s -> %s in %s", hdr.Name, hdr.Linkname, diskRoot)
	case hdr.Typeflag == tar.TypeDir && p == diskRoot:
		return nil
	case p == diskRoot:
		return errorf(BadData, "%s is not a directory", hdr.Name)
	case hdr.Typeflag == tar.TypeDir:
		return errorf(BadData, "directory %s in %s: the disk file lies directly in it", hdr.Name, diskRoot)
	case hdr.Typeflag != tar.TypeReg:
		return errorf(BadData, "%s in %s is not a regular file (type %q)", hdr.Name, diskRoot, hdr.Typeflag)
	case path.Dir(p) != diskRoot:
		return errorf(BadData, "file %s is not directly in %s", hdr.Name, diskRoot)
	case isSparse(hdr):
		return errorf(BadData, "%s is a sparse tar entry", hdr.Name)
	case u.disks[p] != nil:
		return errorf(BadData, "%s appears twice (a later entry would replace the inspected one)", p)
	}
	u.layer[p] = true
	return nil
}

// isSparse reports a GNU or PAX sparse entry, whose bytes in the layer are not the file's.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
