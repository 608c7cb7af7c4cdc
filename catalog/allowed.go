package catalog

import (
	"context"

	"github.com/xloud/xloud-image/auth"
)

// Allowed asks the policy, for each of acts, whether pr may take it on image id: what a user
// interface offers (the dashboard shows only the actions the policy allows). It decides
// nothing itself; the action, when taken, is checked again by the call that does it.
func (c *Catalog) Allowed(ctx context.Context, pr auth.Principal, id string, acts ...auth.ImageAction) (map[auth.ImageAction]bool, error) {
	img, ms, err := c.load(ctx, id)
	if err != nil {
		return nil, err
	}
	f := facts(img, ms)
	out := make(map[auth.ImageAction]bool, len(acts))
	for _, act := range acts {
		ok, err := c.policy.AllowImage(ctx, pr, f, act, "")
		if err != nil {
			return nil, err
		}
		out[act] = ok
	}
	return out, nil
}

// AllowedOnNode asks the policy, for each of acts, whether pr may take it where no one image
// is concerned (the node's image cache): what a user interface offers, as Allowed.
func (c *Catalog) AllowedOnNode(ctx context.Context, pr auth.Principal, acts ...auth.ImageAction) (map[auth.ImageAction]bool, error) {
	out := make(map[auth.ImageAction]bool, len(acts))
	for _, act := range acts {
		ok, err := c.policy.AllowImage(ctx, pr, auth.ImageFacts{}, act, "")
		if err != nil {
			return nil, err
		}
		out[act] = ok
	}
	return out, nil
}
