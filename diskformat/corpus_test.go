package diskformat

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// corpusCase is one image: how to make it, what we must report and what
// qemu-img info must say of it.
type corpusCase struct {
	name   string
	make   func(t *testing.T, dir string) string // returns the file to inspect
	format string
	safe   bool
	reason string // a substring of the reason, when unsafe
	// qemu is the format qemu-img info reports; "" means qemu-img must fail
	// to open the image, and then size is the virtual size we must report.
	qemu string
	size int64
}

// TestCorpus checks every format qemu-img makes, and hostile images made
// by hand, against qemu-img info: same virtual size whenever qemu can open
// the image (and so the same format, up to naming: vpc is vhd, and qemu
// reads iso and gpt as raw), and the expected verdict.
func TestCorpus(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is required (apt-get install -y qemu-utils)")
	}
	cases := append(qemuCases(), hostileCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := c.make(t, t.TempDir())
			r := inspectBothWays(t, path)
			checkVerdict(t, c, r)
			checkAgainstQemu(t, c, path, r)
		})
	}
}

// inspectBothWays inspects a file through InspectFile (which skips what no
// format needs) and as a stream cut at random; both must agree.
func inspectBothWays(t *testing.T, path string) Report {
	t.Helper()
	r, err := InspectFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := NewInspector()
	if _, err := io.Copy(in, &choppyReader{r: f, rnd: rand.New(rand.NewPCG(1, 2))}); err != nil {
		t.Fatal(err)
	}
	if s := in.Report(); s != r {
		t.Fatalf("stream and file disagree:\nstream %+v\nfile   %+v", s, r)
	}
	return r
}

// choppyReader returns reads of random sizes, from 1 byte to 128 KiB.
type choppyReader struct {
	r   io.Reader
	rnd *rand.Rand
}

func (c *choppyReader) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(min(len(p), 128<<10))
	if c.rnd.IntN(4) == 0 {
		n = 1 + c.rnd.IntN(min(len(p), 700))
	}
	return c.r.Read(p[:n])
}

func checkVerdict(t *testing.T, c corpusCase, r Report) {
	t.Helper()
	if r.Format != c.format || r.Safe != c.safe {
		t.Errorf("got %+v, want format %s safe %v", r, c.format, c.safe)
	}
	if r.Safe != (r.Reason == "") {
		t.Errorf("safe %v with reason %q", r.Safe, r.Reason)
	}
	if !c.safe && !strings.Contains(r.Reason, c.reason) {
		t.Errorf("reason %q does not mention %q", r.Reason, c.reason)
	}
}

func checkAgainstQemu(t *testing.T, c corpusCase, path string, r Report) {
	t.Helper()
	info, err := qemuInfo(path)
	if c.qemu == "" {
		if err == nil {
			t.Errorf("qemu-img info opened it: %+v", info)
		}
		if r.VirtualSize != c.size {
			t.Errorf("virtual size %d, want %d", r.VirtualSize, c.size)
		}
		return
	}
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	if info.Format != c.qemu {
		t.Errorf("qemu-img says %s, want %s", info.Format, c.qemu)
	}
	got := r.VirtualSize
	if info.Format == "raw" {
		// qemu rounds a raw file up to whole sectors; Glance, and we,
		// report its length.
		got = (got + 511) &^ 511
	}
	if got != info.VirtualSize {
		t.Errorf("virtual size %d, qemu-img says %d", r.VirtualSize, info.VirtualSize)
	}
}

type qemuImageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func qemuInfo(path string) (qemuImageInfo, error) {
	var info qemuImageInfo
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(out, &info)
}

// qemuImg runs qemu-img in dir.
func qemuImg(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// created returns a maker that runs qemu-img create and returns name.
func created(name string, args ...string) func(*testing.T, string) string {
	return func(t *testing.T, dir string) string {
		qemuImg(t, dir, append([]string{"create", "-q"}, args...)...)
		return filepath.Join(dir, name)
	}
}

// converted returns a maker that converts a 4 MiB patterned raw image.
func converted(name string, args ...string) func(*testing.T, string) string {
	return func(t *testing.T, dir string) string {
		patterned(t, dir, "data.raw")
		qemuImg(t, dir, append([]string{"convert", "-f", "raw", "data.raw"}, args...)...)
		return filepath.Join(dir, name)
	}
}

// patterned writes a 4 MiB raw image with some data and some zeros.
func patterned(t *testing.T, dir, name string) string {
	b := make([]byte, 4<<20)
	for i := range 1 << 20 {
		b[i] = byte(i * 7 / 3)
	}
	copy(b[3<<20:], bytes.Repeat([]byte("xloud"), 1000))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func qemuCases() []corpusCase {
	return []corpusCase{
		{name: "qcow2-v3", make: created("i.qcow2", "-f", "qcow2", "-o", "compat=1.1", "i.qcow2", "1G"),
			format: QCOW2, safe: true, qemu: "qcow2"},
		{name: "qcow2-v2", make: created("i.qcow2", "-f", "qcow2", "-o", "compat=0.10", "i.qcow2", "1G"),
			format: QCOW2, safe: true, qemu: "qcow2"},
		{name: "qcow2-compressed", make: converted("i.qcow2", "-c", "-O", "qcow2", "i.qcow2"),
			format: QCOW2, safe: true, qemu: "qcow2"},
		{name: "qcow2-zstd", make: created("i.qcow2", "-f", "qcow2", "-o", "compression_type=zstd", "i.qcow2", "1G"),
			format: QCOW2, safe: true, qemu: "qcow2"},
		{name: "qcow2-extended-l2", make: created("i.qcow2", "-f", "qcow2", "-o", "extended_l2=on", "i.qcow2", "1G"),
			format: QCOW2, reason: "extended L2", qemu: "qcow2"},
		{name: "qcow2-backing-file", make: qcow2WithBacking,
			format: QCOW2, reason: "backing file", qemu: "qcow2"},
		{name: "qcow2-data-file", make: created("i.qcow2", "-f", "qcow2", "-o", "data_file=i.data", "i.qcow2", "64M"),
			format: QCOW2, reason: "external data file", qemu: "qcow2"},
		{name: "raw", make: created("i.raw", "-f", "raw", "i.raw", "16M"),
			format: Raw, safe: true, qemu: "raw"},
		{name: "raw-with-data", make: func(t *testing.T, dir string) string { return patterned(t, dir, "i.raw") },
			format: Raw, safe: true, qemu: "raw"},
		{name: "vhd-dynamic", make: created("i.vhd", "-f", "vpc", "i.vhd", "1G"),
			format: VHD, safe: true, qemu: "vpc"},
		{name: "vhd-dynamic-with-data", make: converted("i.vhd", "-O", "vpc", "i.vhd"),
			format: VHD, safe: true, qemu: "vpc"},
		{name: "vhd-fixed-reads-as-raw", make: created("i.vhd", "-f", "vpc", "-o", "subformat=fixed", "i.vhd", "16M"),
			format: Raw, safe: true, qemu: "raw"},
		{name: "vhdx", make: created("i.vhdx", "-f", "vhdx", "i.vhdx", "1G"),
			format: VHDX, safe: true, qemu: "vhdx"},
		{name: "vhdx-with-data", make: converted("i.vhdx", "-O", "vhdx", "i.vhdx"),
			format: VHDX, safe: true, qemu: "vhdx"},
		{name: "vmdk-monolithicSparse", make: created("i.vmdk", "-f", "vmdk", "i.vmdk", "1G"),
			format: VMDK, safe: true, qemu: "vmdk"},
		{name: "vmdk-streamOptimized", make: converted("i.vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized", "i.vmdk"),
			format: VMDK, safe: true, qemu: "vmdk"},
		{name: "vmdk-streamOptimized-footer", make: vmdkWithFooter,
			format: VMDK, safe: true, qemu: "vmdk"},
		{name: "vmdk-monolithicFlat", make: created("i.vmdk", "-f", "vmdk", "-o", "subformat=monolithicFlat", "i.vmdk", "16M"),
			format: VMDK, reason: `unsupported subformat "monolithicFlat"`, qemu: "vmdk"},
		{name: "vmdk-twoGbMaxExtentSparse", make: created("i.vmdk", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "i.vmdk", "3G"),
			format: VMDK, reason: `unsupported subformat "twoGbMaxExtentSparse"`, qemu: "vmdk"},
		{name: "vmdk-extent-of-twoGbMaxExtentSparse", make: created("i-s001.vmdk", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "i.vmdk", "3G"),
			format: VMDK, reason: "no createType", size: 2 << 30},
		{name: "vdi", make: created("i.vdi", "-f", "vdi", "i.vdi", "1G"),
			format: VDI, safe: true, qemu: "vdi"},
		{name: "vdi-static", make: created("i.vdi", "-f", "vdi", "-o", "static=on", "i.vdi", "16M"),
			format: VDI, safe: true, qemu: "vdi"},
		{name: "qed", make: created("i.qed", "-f", "qed", "i.qed", "1G"),
			format: QED, reason: "not allowed", qemu: "qed"},
		{name: "luks", make: created("i.luks", luksM...),
			format: LUKS, safe: true, qemu: "luks"},
		{name: "iso", make: func(t *testing.T, dir string) string {
			return sparseFile(t, dir, "i.iso", 1000*isoSectorLen, isoPiece(1000))
		}, format: ISO, safe: true, qemu: "raw"},
	}
}

func qcow2WithBacking(t *testing.T, dir string) string {
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "base.qcow2", "1G")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "i.qcow2")
	return filepath.Join(dir, "i.qcow2")
}

// vmdkWithFooter turns qemu's streamOptimized image into the layout VMware
// writes: the header defers the grain directory to a footer (marker, copy
// of the header with the real directory offset, end-of-stream marker) at
// the end of the file. qemu reads it either way.
func vmdkWithFooter(t *testing.T, dir string) string {
	path := converted("i.vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized", "i.vmdk")(t, dir)
	header := readAt(t, path, 0, 512)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	marker := make([]byte, 512)
	copy(marker, u64le(1))
	copy(marker[12:], u32le(vmdkMarkerFooter))
	deferred := bytes.Clone(header)
	copy(deferred[56:], u64le(vmdkGDAtEnd))
	patchFile(t, path, piece{0, deferred},
		piece{st.Size(), marker}, piece{st.Size() + 512, header}, piece{st.Size() + 1024, make([]byte, 512)})
	return path
}
