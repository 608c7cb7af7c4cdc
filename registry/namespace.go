package registry

import (
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// checkNamespace refuses a push to a repository named by its project's id when the project's
// namespace is its name, naming the path to use. Aliasing the id form onto the name instead
// would have to rewrite every path, Location header, token grant, mount source and catalog
// entry, and a client that pushed to `<id>/x` would still see `<name>/x` listed: one
// namespace per project, told to the pusher, is simpler and cannot diverge. Only pushes are
// refused, so content that landed under an id before stays readable and deletable. It runs
// after authorize, so only a caller with rights on the project learns its name.
func (reg *Registry) checkNamespace(r *http.Request, rt route) error {
	acc := reg.opt.Access
	if acc == nil || rt.name == "" || action(rt, r.Method) != auth.ActionPush {
		return nil
	}
	want, err := acc.Policy.CanonicalRepository(r.Context(), rt.name)
	if err != nil || want == rt.name {
		return err
	}
	return E(CodeNameInvalid).WithMessage("repository %s is named by its project's id: push to %s (a project's repositories are named by the project's name)", rt.name, want)
}
