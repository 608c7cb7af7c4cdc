package auth

import (
	"context"
	"fmt"
)

// SecretAction is an operation of the key-manager secrets API, named after Barbican's policy
// rule.
type SecretAction string

// Secret actions (barbican/common/policies/secrets.py).
const (
	SecretCreate  SecretAction = "secrets:post"
	SecretList    SecretAction = "secrets:get"
	SecretGet     SecretAction = "secret:get"
	SecretDecrypt SecretAction = "secret:decrypt"
	SecretDelete  SecretAction = "secret:delete"
)

// AllowSecret decides whether pr may take act on the secret s (for SecretCreate and
// SecretList only s.ProjectID counts). It follows Barbican's default policies reduced to our
// roles: cloud admins may do everything; within the owning project readers see metadata and
// the list, members and managers also create and read payloads, and deleting is for the
// secret's creator or the project's managers. Who holds no role on the project is told the
// secret does not exist (ErrNotFound); who may see it but not do act is ErrForbidden.
func (p *Policy) AllowSecret(ctx context.Context, pr Principal, act SecretAction, s Secret) error {
	if pr.Admin {
		return nil
	}
	// A registry token (Bounded) grants repository access only, never secrets.
	if pr.Anonymous || pr.UserID == "" || pr.Bounded || s.ProjectID == "" {
		return errNoSecret
	}
	roles, err := p.RolesOn(ctx, pr, s.ProjectID)
	if err != nil {
		return err
	}
	if !hasRole(roles, readerRoles...) {
		if act == SecretCreate || act == SecretList {
			return fmt.Errorf("%w: no role on project %s", ErrForbidden, s.ProjectID)
		}
		return errNoSecret
	}
	var ok bool
	switch act {
	case SecretList, SecretGet:
		ok = true
	case SecretCreate, SecretDecrypt:
		ok = hasRole(roles, writerRoles...)
	case SecretDelete:
		ok = hasRole(roles, RoleManager, RoleAdmin) || (s.CreatorID == pr.UserID && hasRole(roles, writerRoles...))
	}
	if !ok {
		return fmt.Errorf("%w: %s on a secret of project %s", ErrForbidden, act, s.ProjectID)
	}
	return nil
}
