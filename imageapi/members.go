package imageapi

import (
	"encoding/json"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// listMembers is GET /v2/images/{id}/members: all members for the owner, the caller's own
// row for a member (§2.2).
func (a *API) listMembers(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	ms, err := a.cat.Members(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	list := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		list = append(list, toMemberJSON(m))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"members": list, "schema": "/v2/schemas/members"})
}

// addMember is POST /v2/images/{id}/members {"member": "<project>"}: 200 with the pending
// membership.
func (a *API) addMember(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	project, err := stringField(w, r, "member", "Member to be added not specified.")
	if err != nil {
		return err
	}
	m, err := a.cat.AddMember(r.Context(), pr, r.PathValue("id"), project)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toMemberJSON(m))
}

// showMember is GET /v2/images/{id}/members/{member}.
func (a *API) showMember(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	m, err := a.cat.GetMember(r.Context(), pr, r.PathValue("id"), r.PathValue("member"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toMemberJSON(m))
}

// updateMember is PUT /v2/images/{id}/members/{member} {"status": "accepted"}: only the
// member project (or an admin) may. Other keys in the body are ignored (OSC sends "member").
func (a *API) updateMember(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	status, err := stringField(w, r, "status", "Status not specified.")
	if err != nil {
		return err
	}
	m, err := a.cat.SetMemberStatus(r.Context(), pr, r.PathValue("id"), r.PathValue("member"), status)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toMemberJSON(m))
}

// removeMember is DELETE /v2/images/{id}/members/{member}: 204.
func (a *API) removeMember(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.RemoveMember(r.Context(), pr, r.PathValue("id"), r.PathValue("member")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stringField reads one string member of a JSON object body; missing or not a string is
// 400 with missing as the message.
func stringField(w http.ResponseWriter, r *http.Request, key, missing string) (string, error) {
	obj, err := decodeObject(w, r)
	if err != nil {
		return "", err
	}
	var s string
	if raw, ok := obj[key]; !ok || json.Unmarshal(raw, &s) != nil {
		return "", errorf(http.StatusBadRequest, "%s", missing)
	}
	return s, nil
}
