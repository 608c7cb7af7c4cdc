package auth

import "context"

// MetadefAction is what a caller wants to do with metadata definitions (Glance's policy
// rule names, glance/policies/metadef.py).
type MetadefAction string

// Metadef actions. The reads are Glance's "admin, or a reader of the namespace's project
// or of any project for a public namespace"; every write is metadef_admin (admin only).
const (
	MetadefListNamespaces     MetadefAction = "get_metadef_namespaces"
	MetadefGetNamespace       MetadefAction = "get_metadef_namespace"
	MetadefAddNamespace       MetadefAction = "add_metadef_namespace"
	MetadefModifyNamespace    MetadefAction = "modify_metadef_namespace"
	MetadefDeleteNamespace    MetadefAction = "delete_metadef_namespace"
	MetadefListResourceTypes  MetadefAction = "list_metadef_resource_types"
	MetadefGetResourceType    MetadefAction = "get_metadef_resource_type"
	MetadefAddAssociation     MetadefAction = "add_metadef_resource_type_association"
	MetadefRemoveAssociation  MetadefAction = "remove_metadef_resource_type_association"
	MetadefGetObject          MetadefAction = "get_metadef_object"
	MetadefAddObject          MetadefAction = "add_metadef_object"
	MetadefModifyObject       MetadefAction = "modify_metadef_object"
	MetadefDeleteObject       MetadefAction = "delete_metadef_object"
	MetadefGetProperty        MetadefAction = "get_metadef_property"
	MetadefAddProperty        MetadefAction = "add_metadef_property"
	MetadefModifyProperty     MetadefAction = "modify_metadef_property"
	MetadefRemoveProperty     MetadefAction = "remove_metadef_property"
	MetadefGetTag             MetadefAction = "get_metadef_tag"
	MetadefAddTag             MetadefAction = "add_metadef_tag"
	MetadefAddTags            MetadefAction = "add_metadef_tags"
	MetadefModifyTag          MetadefAction = "modify_metadef_tag"
	MetadefDeleteTag          MetadefAction = "delete_metadef_tag"
	MetadefDeleteTags         MetadefAction = "delete_metadef_tags"
	MetadefGetObjects         MetadefAction = "get_metadef_objects"
	MetadefGetProperties      MetadefAction = "get_metadef_properties"
	MetadefGetTags            MetadefAction = "get_metadef_tags"
	MetadefListResourceAssocs MetadefAction = "list_metadef_resource_type_associations"
)

var metadefReads = map[MetadefAction]bool{
	MetadefListNamespaces: true, MetadefGetNamespace: true, MetadefListResourceTypes: true,
	MetadefGetResourceType: true, MetadefGetObject: true, MetadefGetProperty: true, MetadefGetTag: true,
	MetadefGetObjects: true, MetadefGetProperties: true, MetadefGetTags: true, MetadefListResourceAssocs: true,
}

// MetadefFacts is what the policy needs to know about one namespace.
type MetadefFacts struct {
	Owner      string // project id; empty: a namespace without owner (the shipped definitions)
	Visibility string // public or private
}

// MetadefVisible is Glance's visibility rule for namespaces (metadef_api/namespace.py):
// admins see all; others a namespace without owner, a public one, or their project's. An
// invisible namespace answers as a missing one (404), whatever the action.
func (p *Policy) MetadefVisible(pr Principal, ns MetadefFacts) bool {
	if pr.Admin {
		return true
	}
	if pr.Anonymous || pr.Bounded {
		return false
	}
	return ns.Owner == "" || ns.Visibility == "public" || (pr.ProjectID != "" && ns.Owner == pr.ProjectID)
}

// AllowMetadef decides whether pr may take act on a namespace it can see (ns nil for the
// actions on no namespace: listing, creating one, listing resource types). Reads need the
// reader role on the caller's project; writes are for admins (Glance's metadef_admin).
func (p *Policy) AllowMetadef(ctx context.Context, pr Principal, ns *MetadefFacts, act MetadefAction) (bool, error) {
	if pr.Bounded || pr.Anonymous {
		return false, nil
	}
	if pr.Admin {
		return true, nil
	}
	if !metadefReads[act] {
		return false, nil
	}
	if ns != nil && !p.MetadefVisible(pr, *ns) {
		return false, nil
	}
	return p.hasRoleOn(ctx, pr, pr.ProjectID, readerRoles...)
}
