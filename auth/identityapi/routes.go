package identityapi

// routes lists every route of the identity API (Keystone v3 api-ref). GET routes also answer
// HEAD; all but discovery and POST /auth/tokens need a valid X-Auth-Token.
func (h *Handler) routes() {
	const v3 = "/identity/v3"
	h.handle("GET /identity", h.handleGetVersions)
	h.handle("GET /identity/{$}", h.handleGetVersions)
	h.handle("GET "+v3, h.handleGetVersion)
	h.handle("GET "+v3+"/{$}", h.handleGetVersion)

	h.handle("POST "+v3+"/auth/tokens", h.handleCreateToken)
	h.handle("GET "+v3+"/auth/tokens", h.authed(h.handleGetToken))
	h.handle("DELETE "+v3+"/auth/tokens", h.authed(h.handleRevokeToken))
	h.handle("GET "+v3+"/auth/catalog", h.authed(h.handleGetCatalog))
	h.handle("GET "+v3+"/auth/projects", h.authed(h.handleListAuthProjects))
	h.handle("GET "+v3+"/auth/domains", h.authed(h.handleListAuthDomains))

	h.handle("GET "+v3+"/projects", h.authed(h.handleListProjects))
	h.handle("POST "+v3+"/projects", h.authed(h.handleCreateProject))
	h.handle("GET "+v3+"/projects/{project}", h.authed(h.handleGetProject))
	h.handle("PATCH "+v3+"/projects/{project}", h.authed(h.handleUpdateProject))
	h.handle("DELETE "+v3+"/projects/{project}", h.authed(h.handleDeleteProject))

	h.handle("GET "+v3+"/users", h.authed(h.handleListUsers))
	h.handle("POST "+v3+"/users", h.authed(h.handleCreateUser))
	h.handle("GET "+v3+"/users/{user}", h.authed(h.handleGetUser))
	h.handle("PATCH "+v3+"/users/{user}", h.authed(h.handleUpdateUser))
	h.handle("DELETE "+v3+"/users/{user}", h.authed(h.handleDeleteUser))
	h.handle("POST "+v3+"/users/{user}/password", h.authed(h.handleChangePassword))
	h.handle("GET "+v3+"/users/{user}/projects", h.authed(h.handleListUserProjects))

	h.handle("GET "+v3+"/roles", h.authed(h.handleListRoles))
	h.handle("GET "+v3+"/roles/{role}", h.authed(h.handleGetRole))
	h.handle("GET "+v3+"/domains", h.authed(h.handleListDomains))
	h.handle("GET "+v3+"/domains/{domain}", h.authed(h.handleGetDomain))

	h.handle("GET "+v3+"/projects/{project}/users/{user}/roles", h.authed(h.handleListGrants))
	h.handle("PUT "+v3+"/projects/{project}/users/{user}/roles/{role}", h.authed(h.handleCreateGrant))
	h.handle("GET "+v3+"/projects/{project}/users/{user}/roles/{role}", h.authed(h.handleCheckGrant))
	h.handle("DELETE "+v3+"/projects/{project}/users/{user}/roles/{role}", h.authed(h.handleRevokeGrant))
	h.handle("GET "+v3+"/system/users/{user}/roles", h.authed(h.handleListSystemGrants))
	h.handle("PUT "+v3+"/system/users/{user}/roles/{role}", h.authed(h.handleCreateSystemGrant))
	h.handle("GET "+v3+"/system/users/{user}/roles/{role}", h.authed(h.handleCheckSystemGrant))
	h.handle("DELETE "+v3+"/system/users/{user}/roles/{role}", h.authed(h.handleRevokeSystemGrant))
	h.handle("GET "+v3+"/role_assignments", h.authed(h.handleListRoleAssignments))

	h.handle("GET "+v3+"/services", h.authed(h.handleListServices))
	h.handle("GET "+v3+"/services/{id}", h.authed(h.handleGetService))
	h.handle("GET "+v3+"/regions", h.authed(h.handleListRegions))
	h.handle("GET "+v3+"/regions/{id}", h.authed(h.handleGetRegion))

	h.handle("GET "+v3+"/registered_limits", h.authed(h.handleListRegisteredLimits))
	h.handle("POST "+v3+"/registered_limits", h.authed(h.handleCreateRegisteredLimits))
	h.handle("GET "+v3+"/registered_limits/{id}", h.authed(h.handleGetRegisteredLimit))
	h.handle("PATCH "+v3+"/registered_limits/{id}", h.authed(h.handleUpdateRegisteredLimit))
	h.handle("DELETE "+v3+"/registered_limits/{id}", h.authed(h.handleDeleteRegisteredLimit))
	h.handle("GET "+v3+"/limits", h.authed(h.handleListLimits))
	h.handle("POST "+v3+"/limits", h.authed(h.handleCreateLimits))
	h.handle("GET "+v3+"/limits/model", h.authed(h.handleGetLimitModel))
	h.handle("GET "+v3+"/limits/{id}", h.authed(h.handleGetLimit))
	h.handle("PATCH "+v3+"/limits/{id}", h.authed(h.handleUpdateLimit))
	h.handle("DELETE "+v3+"/limits/{id}", h.authed(h.handleDeleteLimit))
}
