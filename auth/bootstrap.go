package auth

import (
	"context"
	"errors"
	"fmt"
)

// AdminName is the bootstrap administrator's user and project name.
const AdminName = "admin"

// Bootstrap makes sure the admin project and user exist, the user holding the admin role.
// On first start it creates them with password; afterwards it changes nothing (the password
// is then whatever was set last). It reports whether it created the user.
func (id *Identity) Bootstrap(ctx context.Context, password string) (bool, error) {
	if _, err := id.UserByName(ctx, AdminName); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if password == "" {
		return false, fmt.Errorf("%w: bootstrap needs an admin password", ErrInvalid)
	}
	// Nodes of a cluster starting together over an empty store race here: names are unique
	// in the store, so a loser finds the winner's project, or its user and stops.
	proj, err := id.ProjectByName(ctx, AdminName)
	if errors.Is(err, ErrNotFound) {
		proj, err = id.CreateProject(ctx, Project{Name: AdminName, Description: "Bootstrap project for initializing the cloud.", Enabled: true})
		if errors.Is(err, ErrConflict) {
			proj, err = id.ProjectByName(ctx, AdminName)
		}
	}
	if err != nil {
		return false, fmt.Errorf("bootstrap admin project: %w", err)
	}
	u, err := id.CreateUser(ctx, User{Name: AdminName, Enabled: true, DefaultProjectID: proj.ID}, password)
	if errors.Is(err, ErrConflict) {
		return false, nil // another node made it, and grants its role
	}
	if err != nil {
		return false, fmt.Errorf("bootstrap admin user: %w", err)
	}
	if err := id.Grant(ctx, u.ID, proj.ID, RoleAdmin); err != nil {
		return false, fmt.Errorf("bootstrap admin role: %w", err)
	}
	return true, nil
}

// NeedsBootstrap reports whether the admin user does not exist yet.
func (id *Identity) NeedsBootstrap(ctx context.Context) (bool, error) {
	_, err := id.UserByName(ctx, AdminName)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	return false, err
}
