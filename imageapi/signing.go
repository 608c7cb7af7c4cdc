package imageapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/signing"
)

// getSigningPolicy is GET /v2/xloud/projects/{project_id}/signing-policy: the project's
// policy (mode off and nothing trusted when it has none).
func (a *API) getSigningPolicy(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	p, err := a.cat.SigningPolicy(r.Context(), pr, r.PathValue("project_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// putSigningPolicy is PUT …/signing-policy: the whole policy, validated (400 with the
// reason); the project's images are re-verified in the background.
func (a *API) putSigningPolicy(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	b, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var p signing.Policy
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return errorf(http.StatusBadRequest, "invalid signing policy: %v", err)
	}
	if d.More() {
		return errorf(http.StatusBadRequest, "invalid signing policy: one JSON object expected")
	}
	p, err = a.cat.SetSigningPolicy(r.Context(), pr, r.PathValue("project_id"), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// deleteSigningPolicy is DELETE …/signing-policy: back to mode off, nothing trusted.
func (a *API) deleteSigningPolicy(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.DeleteSigningPolicy(r.Context(), pr, r.PathValue("project_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listSignatures is GET /v2/images/{id}/signatures: every signature found for the image's
// manifest, verified or not, by whom, and the reason when not.
func (a *API) listSignatures(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	sigs, err := a.cat.Signatures(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"signatures": sigs})
}
