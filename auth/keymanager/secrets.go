package keymanager

import (
	"encoding/base64"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// versionLinks is the version entry of the discovery documents; keystoneauth matches "v1"
// against the version barbicanclient asks for.
func (h *Handler) version(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v1", "status": "stable",
		"links":       []map[string]string{{"rel": "self", "href": h.base(r) + Prefix + "/v1/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.key-manager-v1+json"}},
	}
}

// handleVersions is GET /key-manager: the versions document (300, as Barbican answers).
func (h *Handler) handleVersions(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, r, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{h.version(r)}}})
}

// handleVersion is GET /key-manager/v1.
func (h *Handler) handleVersion(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, r, http.StatusOK, map[string]any{"version": h.version(r)})
}

// newSecret is the body of POST /v1/secrets.
type newSecret struct {
	Name                   string  `json:"name"`
	SecretType             string  `json:"secret_type"`
	Algorithm              *string `json:"algorithm"`
	BitLength              *int    `json:"bit_length"`
	Mode                   *string `json:"mode"`
	Expiration             *string `json:"expiration"`
	Payload                *string `json:"payload"`
	PayloadContentType     string  `json:"payload_content_type"`
	PayloadContentEncoding string  `json:"payload_content_encoding"`
}

// binaryTypes are the payload content types stored as bytes, sent base64-encoded.
var binaryTypes = []string{"application/octet-stream", "application/pkcs8", "application/pkix-cert", "application/x-pem-file"}

// payloadBytes decodes a payload as Barbican's content-type and encoding rules say: text/plain
// is stored as its UTF-8 text with no encoding, a binary type needs base64.
func payloadBytes(in newSecret) (contentType string, payload []byte, err error) {
	if in.Payload == nil || *in.Payload == "" {
		return "", nil, badRequest("Provided object does not match schema 'Secret': If 'payload' is supplied, it must not be empty. A payload is required here: two-step uploads are not supported.")
	}
	mt, params, perr := mime.ParseMediaType(in.PayloadContentType)
	if in.PayloadContentType == "" || perr != nil {
		return "", nil, badRequest("Provided object does not match schema 'Secret': If 'payload' is supplied, 'payload_content_type' must also be supplied.")
	}
	enc := strings.ToLower(in.PayloadContentEncoding)
	switch {
	case mt == "text/plain":
		if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
			return "", nil, badRequest("Invalid payload content type: charset %s is not supported.", cs)
		}
		if enc != "" {
			return "", nil, badRequest("Invalid payload content encoding: %s is not allowed with text/plain.", in.PayloadContentEncoding)
		}
		return "text/plain", []byte(*in.Payload), nil
	case slices.Contains(binaryTypes, mt):
		if enc != "base64" {
			return "", nil, badRequest("Invalid payload content encoding: %s needs payload_content_encoding 'base64'.", mt)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*in.Payload))
		if err != nil {
			return "", nil, badRequest("Problem decoding payload: not valid base64.")
		}
		return mt, b, nil
	}
	return "", nil, badRequest("Invalid payload content type: %s is not supported.", in.PayloadContentType)
}

// handleCreateSecret is POST /v1/secrets: 201 with the secret's reference.
func (h *Handler) handleCreateSecret(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	var in newSecret
	if err := decode(w, r, &in); err != nil {
		return err
	}
	ct, payload, err := payloadBytes(in)
	if err != nil {
		return err
	}
	s := auth.Secret{ProjectID: pr.ProjectID, CreatorID: pr.UserID, Name: in.Name, SecretType: in.SecretType,
		BitLength: in.BitLength, ContentType: ct, Payload: payload}
	if in.Algorithm != nil {
		s.Algorithm = *in.Algorithm
	}
	if in.Mode != nil {
		s.Mode = *in.Mode
	}
	if in.BitLength != nil && *in.BitLength < 0 {
		return badRequest("Provided object does not match schema 'Secret': bit_length must be non-negative.")
	}
	if in.Expiration != nil && *in.Expiration != "" {
		t, err := parseTime(*in.Expiration)
		if err != nil {
			return badRequest("Provided object does not match schema 'Secret': Invalid date for 'expiration'.")
		}
		s.Expiration = &t
	}
	if !pr.Scoped {
		return badRequest("A secret belongs to a project: authenticate with a project-scoped token.")
	}
	if err := h.opt.Policy.AllowSecret(r.Context(), pr, auth.SecretCreate, s); err != nil {
		return err
	}
	s, err = h.opt.Secrets.Create(r.Context(), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", h.ref(r, s.ID))
	return writeJSON(w, r, http.StatusCreated, map[string]string{"secret_ref": h.ref(r, s.ID)})
}

// parseTime reads an ISO 8601 time as barbicanclient sends it (with or without a zone; no
// zone is UTC).
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999-07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("invalid time %q", s)
}

func (h *Handler) ref(r *http.Request, id string) string {
	return h.base(r) + Prefix + "/v1/secrets/" + id
}

// secretJSON is a secret's metadata as Barbican shows it.
func (h *Handler) secretJSON(r *http.Request, s auth.Secret) map[string]any {
	var exp any
	if s.Expiration != nil {
		exp = s.Expiration.UTC().Format(time.RFC3339)
	}
	created := s.Created.UTC().Format("2006-01-02T15:04:05")
	status := "ACTIVE"
	if s.Expired(time.Now()) {
		status = "EXPIRED"
	}
	return map[string]any{
		"secret_ref": h.ref(r, s.ID), "name": nullable(s.Name), "secret_type": s.SecretType,
		"status": status, "created": created, "updated": created, "expiration": exp,
		"algorithm": nullable(s.Algorithm), "bit_length": s.BitLength, "mode": nullable(s.Mode),
		"content_types": map[string]string{"default": s.ContentType}, "creator_id": s.CreatorID,
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// handleListSecrets is GET /v1/secrets: the caller's project's secrets, offset and limit
// paged (default 10, at most 100) with the total and next/previous links.
func (h *Handler) handleListSecrets(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	q := r.URL.Query()
	offset, err := intParam(q.Get("offset"), 0)
	if err != nil {
		return badRequest("Invalid offset: %s.", q.Get("offset"))
	}
	limit, err := intParam(q.Get("limit"), 10)
	if err != nil || limit == 0 {
		return badRequest("Invalid limit: %s.", q.Get("limit"))
	}
	limit = min(limit, 100)
	project := pr.ProjectID
	if project == "" {
		return badRequest("Secrets belong to projects: authenticate with a project-scoped token.")
	}
	if err := h.opt.Policy.AllowSecret(r.Context(), pr, auth.SecretList, auth.Secret{ProjectID: project}); err != nil {
		return err
	}
	secrets, total, err := h.opt.Secrets.List(r.Context(), project, offset, limit)
	if err != nil {
		return err
	}
	out := map[string]any{"secrets": []any{}, "total": total}
	list := []any{}
	for _, s := range secrets {
		list = append(list, h.secretJSON(r, s))
	}
	out["secrets"] = list
	page := func(off int) string {
		return h.base(r) + Prefix + "/v1/secrets?limit=" + strconv.Itoa(limit) + "&offset=" + strconv.Itoa(off)
	}
	if offset+limit < total {
		out["next"] = page(offset + limit)
	}
	if offset > 0 {
		out["previous"] = page(max(offset-limit, 0))
	}
	return writeJSON(w, r, http.StatusOK, out)
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("invalid number %q", s)
	}
	return n, nil
}

// handleGetSecret is GET /v1/secrets/{id}: the metadata as JSON; an Accept naming another
// type asks for the payload, as Barbican's older clients do.
func (h *Handler) handleGetSecret(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if accept := r.Header.Get("Accept"); accept != "" && !acceptsJSON(accept) {
		return h.handleGetPayload(w, r, pr)
	}
	s, err := h.opt.Policy.ReadSecret(r.Context(), h.opt.Secrets, pr, r.PathValue("id"), auth.SecretGet)
	if err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, h.secretJSON(r, s))
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "application/json" || mt == "*/*" {
			return true
		}
	}
	return false
}

// handleGetPayload is GET /v1/secrets/{id}/payload: the payload in its stored content type.
// An Accept that does not admit that type is 406, as Barbican answers.
func (h *Handler) handleGetPayload(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	s, err := h.opt.Policy.ReadSecret(r.Context(), h.opt.Secrets, pr, r.PathValue("id"), auth.SecretDecrypt)
	if err != nil {
		return err
	}
	if !accepts(r.Header.Get("Accept"), s.ContentType) {
		return &Error{Status: http.StatusNotAcceptable, Description: "Wrong payload content-type: the payload is " + s.ContentType + "."}
	}
	ct := s.ContentType
	if ct == "text/plain" {
		ct = "text/plain; charset=utf-8"
	}
	return writeBody(w, r, http.StatusOK, ct, s.Payload)
}

// accepts reports whether an Accept header admits contentType; none admits anything.
func accepts(accept, contentType string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == contentType || (mt == "application/*" && strings.HasPrefix(contentType, "application/")) ||
			(mt == "text/*" && strings.HasPrefix(contentType, "text/")) {
			return true
		}
	}
	return false
}

// handleDeleteSecret is DELETE /v1/secrets/{id}: 204.
func (h *Handler) handleDeleteSecret(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	s, err := h.opt.Policy.ReadSecret(r.Context(), h.opt.Secrets, pr, r.PathValue("id"), auth.SecretDelete)
	if err != nil {
		return err
	}
	if err := h.opt.Secrets.Delete(r.Context(), s.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
