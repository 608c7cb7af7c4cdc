package catalog

import "github.com/google/uuid"

// parseUUID returns the canonical form of s, if it is a UUID.
func parseUUID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", ErrInvalid
	}
	return u.String(), nil
}
