package auth

import (
	"context"
	"errors"
	"testing"
)

// TestSecretPolicyMatrix asserts the decision of every caller kind (in the order of
// newPolicyWorld: anonymous, reader, member, manager, other project, stranger, scoped to b,
// token for b/x, token for a/img, admin) on a secret of project a created by "member":
// y allowed, F forbidden (the caller may see the secret), H hidden (answers as missing).
func TestSecretPolicyMatrix(t *testing.T) {
	w := newPolicyWorld(t)
	p := &Policy{Directory: w.id}
	creator := w.principl["member"].UserID
	secret := Secret{ID: "s", ProjectID: w.project["a"], CreatorID: creator}
	for act, want := range map[SecretAction]string{
		SecretList:    "HyyyFFFHHy",
		SecretCreate:  "HFyyFFFHHy",
		SecretGet:     "HyyyHHHHHy",
		SecretDecrypt: "HFyyHHHHHy",
		SecretDelete:  "HFyyHHHHHy",
	} {
		got := ""
		for _, caller := range w.callers {
			err := p.AllowSecret(context.Background(), w.principl[caller], act, secret)
			switch {
			case err == nil:
				got += "y"
			case errors.Is(err, ErrForbidden):
				got += "F"
			case errors.Is(err, ErrNotFound):
				got += "H"
			default:
				t.Fatalf("%s as %s: %v", act, caller, err)
			}
		}
		if got != want {
			t.Errorf("%s: %s, want %s (callers %v)", act, got, want, w.callers)
		}
	}
	// Deleting is the creator's or a manager's: another member of the project may not.
	other := w.principl["member"]
	other.UserID = "someone-else"
	other.Scoped, other.ProjectID, other.ScopedRoles = true, w.project["a"], []Role{RoleMember}
	if err := p.AllowSecret(context.Background(), other, SecretDelete, secret); !errors.Is(err, ErrForbidden) {
		t.Errorf("delete by a member who is not the creator: %v, want forbidden", err)
	}
}
