package auth

import "context"

// IdentityAction is an operation of the Keystone v3 API, named after Keystone's policy rule.
type IdentityAction string

// Identity actions (keystone/common/policies).
const (
	IdentityListProjects        IdentityAction = "identity:list_projects"
	IdentityGetProject          IdentityAction = "identity:get_project"
	IdentityCreateProject       IdentityAction = "identity:create_project"
	IdentityUpdateProject       IdentityAction = "identity:update_project"
	IdentityDeleteProject       IdentityAction = "identity:delete_project"
	IdentityListUsers           IdentityAction = "identity:list_users"
	IdentityGetUser             IdentityAction = "identity:get_user"
	IdentityCreateUser          IdentityAction = "identity:create_user"
	IdentityUpdateUser          IdentityAction = "identity:update_user"
	IdentityDeleteUser          IdentityAction = "identity:delete_user"
	IdentityChangePassword      IdentityAction = "identity:change_password"
	IdentityListUserProjects    IdentityAction = "identity:list_user_projects"
	IdentityListRoles           IdentityAction = "identity:list_roles"
	IdentityGetRole             IdentityAction = "identity:get_role"
	IdentityListDomains         IdentityAction = "identity:list_domains"
	IdentityGetDomain           IdentityAction = "identity:get_domain"
	IdentityCreateGrant         IdentityAction = "identity:create_grant"
	IdentityCheckGrant          IdentityAction = "identity:check_grant"
	IdentityListGrants          IdentityAction = "identity:list_grants"
	IdentityRevokeGrant         IdentityAction = "identity:revoke_grant"
	IdentityListRoleAssignments IdentityAction = "identity:list_role_assignments"
	IdentityCreateSystemGrant   IdentityAction = "identity:create_system_grant_for_user"
	IdentityCheckSystemGrant    IdentityAction = "identity:check_system_grant_for_user"
	IdentityListSystemGrants    IdentityAction = "identity:list_system_grants_for_user"
	IdentityRevokeSystemGrant   IdentityAction = "identity:revoke_system_grant_for_user"
	IdentityValidateToken       IdentityAction = "identity:validate_token"
	IdentityRevokeToken         IdentityAction = "identity:revoke_token"

	IdentityListServices         IdentityAction = "identity:list_services"
	IdentityGetService           IdentityAction = "identity:get_service"
	IdentityListRegions          IdentityAction = "identity:list_regions"
	IdentityGetRegion            IdentityAction = "identity:get_region"
	IdentityListRegisteredLimits IdentityAction = "identity:list_registered_limits"
	IdentityGetRegisteredLimit   IdentityAction = "identity:get_registered_limit"
	IdentityWriteRegisteredLimit IdentityAction = "identity:create_registered_limits" // and update, delete
	IdentityListLimits           IdentityAction = "identity:list_limits"
	IdentityGetLimit             IdentityAction = "identity:get_limit"
	IdentityWriteLimit           IdentityAction = "identity:create_limits" // and update, delete
	IdentityGetLimitModel        IdentityAction = "identity:get_limit_model"
)

// IdentityTarget is what an identity action concerns: a user (the subject of a user
// operation, the user filter of an assignment listing, the owner of a token) and/or a
// project. Empty fields do not apply.
type IdentityTarget struct {
	UserID    string
	ProjectID string
}

// AllowIdentity decides whether pr may take act on target. It follows Keystone's default
// policies reduced to one domain: the admin role allows everything; any other authenticated
// user may read and change the password of their own user, list their own projects and
// role assignments, read a project they hold a role on, read the domain, the regions, the
// registered limits and the limits of the project their token is scoped to, and validate or
// revoke their own tokens. Nothing else.
func (p *Policy) AllowIdentity(ctx context.Context, pr Principal, act IdentityAction, target IdentityTarget) (bool, error) {
	if pr.Admin {
		return true, nil
	}
	if pr.Anonymous || pr.UserID == "" {
		return false, nil
	}
	self := target.UserID != "" && target.UserID == pr.UserID
	switch act {
	case IdentityGetUser, IdentityChangePassword, IdentityListUserProjects,
		IdentityValidateToken, IdentityRevokeToken:
		return self, nil
	case IdentityListRoleAssignments:
		return self, nil
	case IdentityGetDomain, IdentityListRegions, IdentityGetRegion,
		IdentityListRegisteredLimits, IdentityGetRegisteredLimit, IdentityGetLimitModel:
		return true, nil
	case IdentityListLimits, IdentityGetLimit:
		// Keystone: a project's members read its limits (project_id:%(target.limit.project_id)s).
		return pr.Scoped && target.ProjectID != "" && target.ProjectID == pr.ProjectID, nil
	case IdentityGetProject:
		if target.ProjectID == "" {
			return false, nil
		}
		roles, err := p.Directory.RolesOn(ctx, pr.UserID, target.ProjectID)
		return len(roles) > 0, err
	}
	return false, nil
}
