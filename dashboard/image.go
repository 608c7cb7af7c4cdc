package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// actions the image page offers when the policy allows them.
var pageActions = []auth.ImageAction{auth.ImageModify, auth.ImageDelete, auth.ImagePublicize, auth.ImageCommunitize,
	auth.ImageDeactivate, auth.ImageReactivate, auth.ImageAddMember, auth.ImageDeleteMember, auth.ImageGetMembers,
	auth.ImageUpload}

// field is one line of the image's field list; ReadOnly fields (the server's own, such as
// the signature status) offer no removal.
type field struct {
	Key, Value string
	ReadOnly   bool
}

// command is one copyable command or snippet.
type command struct{ ID, Title, Text string }

// showImage is an image's page: every field, its data's hashes and inspection, members,
// signatures, snapshots, tasks, and the commands that fetch it.
func (d *Dashboard) showImage(w http.ResponseWriter, r *http.Request, s *session) error {
	data, err := d.imagePage(r, s)
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "image", s, data)
	return nil
}

// imagePage gathers what the image page shows; only the image itself must be readable,
// each other part is shown when the catalog lets the caller read it.
func (d *Dashboard) imagePage(r *http.Request, s *session) (map[string]any, error) {
	ctx, id := r.Context(), r.PathValue("id")
	cat := d.opt.Catalog
	img, err := cat.Get(ctx, s.pr, id)
	if err != nil {
		return nil, err
	}
	acts, err := cat.Allowed(ctx, s.pr, id, pageActions...)
	if err != nil {
		return nil, err
	}
	allowed := make(map[string]bool, len(acts)) // keyed by the policy rule's name, for the templates
	for act, ok := range acts {
		allowed[string(act)] = ok
	}
	data := map[string]any{"Image": img, "Row": rowOf(img), "Fields": fields(img), "Allowed": allowed,
		"Verdict": verdict(img), "Commands": d.commands(r, img), "Visibilities": visibilities,
		"Tags": strings.Join(img.Tags, ", "), "Properties": extraProperties(img)}
	if ms, err := cat.Members(ctx, s.pr, id); err == nil {
		data["Members"] = ms
	} else if status(err) == http.StatusInternalServerError {
		return nil, err
	}
	if img.Owner != s.ProjectID && img.Visibility == catalog.VisibilityShared {
		if m, err := cat.GetMember(ctx, s.pr, id, s.ProjectID); err == nil {
			data["MyMembership"] = m
		}
	}
	if sigs, err := cat.Signatures(ctx, s.pr, id); err == nil {
		data["Signatures"] = sigs
	}
	if data["Stores"], err = cat.StoresOf(ctx, s.pr, id); err != nil {
		return nil, err
	}
	snaps, err := cat.Snapshots(ctx, s.pr, id)
	if err != nil {
		return nil, err
	}
	data["Snapshots"] = snaps
	if tasks, err := cat.ImageTasks(ctx, s.pr, id); err == nil {
		data["Tasks"] = tasks
	}
	if d.opt.Metadefs != nil {
		defs, err := d.propertyDefs(r, s)
		if err != nil {
			return nil, err
		}
		data["PropertyDefs"] = defs
	}
	return data, nil
}

// fields lists the image's own fields as the Image API names them.
func fields(img catalog.Image) []field {
	out := []field{
		{Key: "id", Value: img.ID}, {Key: "name", Value: deref(img.Name)}, {Key: "owner", Value: img.Owner}, {Key: "status", Value: string(img.Status)},
		{Key: "visibility", Value: string(img.Visibility)}, {Key: "protected", Value: strconv.FormatBool(img.Protected)},
		{Key: "os_hidden", Value: strconv.FormatBool(img.Hidden)}, {Key: "disk_format", Value: deref(img.DiskFormat)},
		{Key: "container_format", Value: deref(img.ContainerFormat)}, {Key: "size", Value: bytesField(img.Size)},
		{Key: "virtual_size", Value: bytesField(img.VirtualSize)}, {Key: "checksum (MD5)", Value: deref(img.Checksum)},
		{Key: "os_hash_algo", Value: deref(img.HashAlgo)}, {Key: "os_hash_value", Value: deref(img.HashValue)},
		{Key: "min_disk (GiB)", Value: strconv.FormatInt(img.MinDisk, 10)}, {Key: "min_ram (MiB)", Value: strconv.FormatInt(img.MinRAM, 10)},
		{Key: "tags", Value: strings.Join(img.Tags, ", ")}, {Key: "created_at", Value: img.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")},
		{Key: "updated_at", Value: img.UpdatedAt.UTC().Format("2006-01-02T15:04:05Z")},
		{Key: "repository", Value: img.Repository}, {Key: "manifest", Value: img.Reference}, {Key: "disk blob", Value: img.DiskDigest},
	}
	if img.Reason != "" {
		out = append(out, field{Key: "reason", Value: img.Reason})
	}
	return out
}

// extraProperties are the image's other properties, sorted by key.
func extraProperties(img catalog.Image) []field {
	keys := make([]string, 0, len(img.Properties))
	for k := range img.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]field, len(keys))
	for i, k := range keys {
		out[i] = field{Key: k, Value: img.Properties[k], ReadOnly: catalog.ReadOnlyField(k)}
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func bytesField(n *int64) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%d bytes (%s)", *n, human(*n))
}

// human is a size in binary units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// verdict is the format inspector's verdict as the image's state records it: data is made
// active only when the inspector found it to be the declared format and safe; a killed
// image keeps the reason.
func verdict(img catalog.Image) string {
	switch img.Status {
	case catalog.StatusActive, catalog.StatusDeactivated:
		return fmt.Sprintf("inspected: the data is %s as declared and passed the safety checks (virtual size %s)",
			deref(img.DiskFormat), bytesField(img.VirtualSize))
	case catalog.StatusKilled:
		return "refused: " + img.Reason
	}
	return "no data inspected yet"
}

// commands are the copyable commands and the KubeVirt snippet for the image's data.
func (d *Dashboard) commands(r *http.Request, img catalog.Image) []command {
	out := []command{{"cmd-save", "openstack image save", fmt.Sprintf("openstack image save --file %s %s", fileName(img), img.ID)}}
	ref := catalog.OCIReference(img)
	if ref == "" {
		return out
	}
	host := ""
	if d.opt.RegistryHost != nil {
		host = d.opt.RegistryHost(r)
	}
	full := strings.TrimPrefix(host+"/"+ref, "/")
	plain, skopeoTLS := "", ""
	if r.TLS == nil {
		plain, skopeoTLS = "--plain-http ", "--src-tls-verify=false "
	}
	out = append(out,
		command{"cmd-oras", "oras pull", fmt.Sprintf("oras pull %s%s", plain, full)},
		command{"cmd-skopeo", "skopeo copy", fmt.Sprintf("skopeo copy %sdocker://%s oci:%s", skopeoTLS, full, slug(img))})
	if f := deref(img.DiskFormat); f == "qcow2" || f == "raw" {
		// The image's index (or, for a pushed disk, its derived view) tagged with its id lists
		// the containerDisk that containerd, and so KubeVirt, runs.
		cd := strings.TrimPrefix(host+"/"+img.Repository+":"+img.ID, "/")
		out = append(out, command{"cmd-kubevirt", "KubeVirt containerDisk volume",
			"volumes:\n  - name: rootdisk\n    containerDisk:\n      image: " + cd})
	}
	return out
}

func fileName(img catalog.Image) string {
	name := slug(img)
	if f := deref(img.DiskFormat); f != "" {
		name += "." + f
	}
	return name
}

// slug is a file-name-safe form of the image's name (its id when it has none).
func slug(img catalog.Image) string {
	var b strings.Builder
	for _, c := range strings.ToLower(deref(img.Name)) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteRune(c)
		case b.Len() > 0:
			b.WriteByte('-')
		}
	}
	if s := strings.Trim(b.String(), "-."); s != "" {
		return s
	}
	return img.ID
}

// editImage applies the edit form: only the fields that changed, as JSON-patch replaces,
// in one catalog.Update (so a refused change changes nothing).
func (d *Dashboard) editImage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, id := r.Context(), r.PathValue("id")
	img, err := d.opt.Catalog.Get(ctx, s.pr, id)
	if err != nil {
		return err
	}
	var changes []catalog.Change
	set := func(path string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		changes = append(changes, catalog.Change{Op: "replace", Path: path, Value: b})
		return nil
	}
	if name := r.PostFormValue("name"); name != deref(img.Name) {
		set("name", name)
	}
	for _, f := range []struct {
		key  string
		cur  int64
		what string
	}{{"min_disk", img.MinDisk, "Minimum disk"}, {"min_ram", img.MinRAM, "Minimum RAM"}} {
		v := strings.TrimSpace(r.PostFormValue(f.key))
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badInput(f.what + " is a whole number, 0 or more.")
		}
		if n != f.cur {
			set(f.key, n)
		}
	}
	if v := r.PostFormValue("visibility"); v != string(img.Visibility) {
		if !catalog.ValidVisibility(catalog.Visibility(v)) {
			return badInput("Visibility is private, shared, community or public.")
		}
		set("visibility", v)
	}
	if p := r.PostFormValue("protected") == "true"; p != img.Protected {
		set("protected", p)
	}
	tags := splitTags(r.PostFormValue("tags"))
	if !slices.Equal(tags, sortedCopy(img.Tags)) {
		set("tags", tags)
	}
	if len(changes) > 0 {
		if _, err := d.opt.Catalog.Update(ctx, s.pr, id, changes); err != nil {
			return err
		}
	}
	return d.back(w, r)
}

func splitTags(s string) []string {
	out := []string{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}

// back answers a successful action on an image: its page, fetched anew (303).
func (d *Dashboard) back(w http.ResponseWriter, r *http.Request) error {
	http.Redirect(w, r, Prefix+"/images/"+r.PathValue("id"), http.StatusSeeOther)
	return nil
}

// addMember shares the image with a project (id or name).
func (d *Dashboard) addMember(w http.ResponseWriter, r *http.Request, s *session) error {
	project := strings.TrimSpace(r.PostFormValue("member"))
	if project == "" {
		return badInput("Name the project to share with.")
	}
	if _, err := d.opt.Catalog.AddMember(r.Context(), s.pr, r.PathValue("id"), project); err != nil {
		return err
	}
	return d.back(w, r)
}

func (d *Dashboard) removeMember(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.Catalog.RemoveMember(r.Context(), s.pr, r.PathValue("id"), r.PostFormValue("member")); err != nil {
		return err
	}
	return d.back(w, r)
}

// memberStatus accepts or rejects (or sets back to pending) a share offered to the
// session's project.
func (d *Dashboard) memberStatus(w http.ResponseWriter, r *http.Request, s *session) error {
	st := r.PostFormValue("status")
	if st != catalog.MemberAccepted && st != catalog.MemberRejected && st != catalog.MemberPending {
		return badInput("A share is accepted, rejected or pending.")
	}
	if _, err := d.opt.Catalog.SetMemberStatus(r.Context(), s.pr, r.PathValue("id"), s.ProjectID, st); err != nil {
		return err
	}
	return d.back(w, r)
}

func (d *Dashboard) deactivate(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.Catalog.Deactivate(r.Context(), s.pr, r.PathValue("id")); err != nil {
		return err
	}
	return d.back(w, r)
}

func (d *Dashboard) reactivate(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.Catalog.Reactivate(r.Context(), s.pr, r.PathValue("id")); err != nil {
		return err
	}
	return d.back(w, r)
}

// deleteImage deletes the image; a protected one is refused with the catalog's reason.
func (d *Dashboard) deleteImage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.Catalog.Delete(r.Context(), s.pr, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/images", http.StatusSeeOther)
	return nil
}

// signingPolicy shows a project's signing policy (the catalog lets admins and the
// project's own members read it).
func (d *Dashboard) signingPolicy(w http.ResponseWriter, r *http.Request, s *session) error {
	project := r.URL.Query().Get("project")
	if project == "" {
		project = s.ProjectID
	}
	p, err := d.opt.Catalog.SigningPolicy(r.Context(), s.pr, project)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	d.render(w, r, http.StatusOK, "signing", s, map[string]any{"Project": project, "Policy": string(b), "Found": err == nil})
	return nil
}
