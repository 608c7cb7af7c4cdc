package imageapi

import (
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// The metadefs JSON schemas (§2.2), as glance/api/v2/metadef_*.py build them: glanceclient's
// md-* commands fetch and validate against them, tempest checks their names.

var propertyTypeEnum = []any{"array", "boolean", "integer", "number", "object", "string", nil}

// metadefDefinitions are the schemas' shared definitions; withProperty adds the property
// dictionary the namespace and object schemas refer to, minItems the single property
// schema's stringArray bound.
func metadefDefinitions(withProperty, minItems bool) obj {
	stringArray := obj{"type": "array", "items": obj{"type": "string"}, "uniqueItems": true}
	if minItems {
		stringArray["minItems"] = 1
	}
	d := obj{
		"positiveInteger":         obj{"type": "integer", "minimum": 0},
		"positiveIntegerDefault0": obj{"allOf": []any{obj{"$ref": "#/definitions/positiveInteger"}, obj{"default": 0}}},
		"stringArray":             stringArray,
	}
	if withProperty {
		d["property"] = obj{"type": "object", "additionalProperties": obj{
			"type": "object", "required": []string{"title", "type"}, "properties": propertyFields(80)}}
	}
	return d
}

// propertyFields are the fields of one property definition.
func propertyFields(nameLen int) obj {
	return obj{
		"name":        obj{"type": "string", "maxLength": nameLen},
		"title":       obj{"type": "string"},
		"description": obj{"type": "string"},
		"operators":   obj{"type": "array", "items": obj{"type": "string"}},
		"type":        obj{"type": "string", "enum": propertyTypeEnum},
		"required":    obj{"$ref": "#/definitions/stringArray"},
		"minimum":     obj{"type": "number"},
		"maximum":     obj{"type": "number"},
		"maxLength":   obj{"$ref": "#/definitions/positiveInteger"},
		"minLength":   obj{"$ref": "#/definitions/positiveIntegerDefault0"},
		"pattern":     obj{"type": "string", "format": "regex"},
		"enum":        obj{"type": "array"},
		"readonly":    obj{"type": "boolean"},
		"default":     obj{},
		"items": obj{"type": "object", "properties": obj{
			"type": obj{"type": "string", "enum": propertyTypeEnum},
			"enum": obj{"type": "array"},
		}},
		"maxItems":        obj{"$ref": "#/definitions/positiveInteger"},
		"minItems":        obj{"$ref": "#/definitions/positiveIntegerDefault0"},
		"uniqueItems":     obj{"type": "boolean", "default": false},
		"additionalItems": obj{"type": "boolean"},
	}
}

func timestampFields(what string) obj {
	return obj{
		"created_at": obj{"type": "string", "readOnly": true, "description": "Date and time of " + what + " creation", "format": "date-time"},
		"updated_at": obj{"type": "string", "readOnly": true, "description": "Date and time of the last " + what + " modification", "format": "date-time"},
	}
}

func withFields(o obj, more obj) obj {
	for k, v := range more {
		o[k] = v
	}
	return o
}

// schema is glance.schema.Schema.raw().
func schema(name string, props obj, required []string, defs obj) obj {
	s := obj{"name": name, "properties": props, "additionalProperties": false}
	if defs != nil {
		s["definitions"] = defs
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

var collectionLinks = []obj{{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}}

// collectionSchema is glance.schema.CollectionSchema.raw() (dict: DictCollectionSchema):
// the item's definitions move up to the collection.
func collectionSchema(name string, item obj, dict bool) obj {
	defs := item["definitions"]
	delete(item, "definitions")
	member := obj{"type": "array", "items": item}
	if dict {
		member = obj{"type": "object", "additionalProperties": item}
	}
	s := obj{"name": name, "properties": obj{
		name: member, "first": obj{"type": "string"}, "next": obj{"type": "string"}, "schema": obj{"type": "string"},
	}, "links": collectionLinks}
	if defs != nil {
		s["definitions"] = defs
	}
	return s
}

func namespaceSchema() obj {
	props := withFields(obj{
		"namespace":    obj{"type": "string", "description": "The unique namespace text.", "maxLength": 80},
		"display_name": obj{"type": "string", "description": "The user friendly name for the namespace. Used by UI if available.", "maxLength": 80},
		"description":  obj{"type": "string", "description": "Provides a user friendly description of the namespace.", "maxLength": 500},
		"visibility":   obj{"type": "string", "description": "Scope of namespace accessibility.", "enum": []string{"public", "private"}},
		"protected":    obj{"type": "boolean", "description": "If true, namespace will not be deletable."},
		"owner":        obj{"type": "string", "description": "Owner of the namespace.", "maxLength": 255},
		"schema":       obj{"readOnly": true, "type": "string"},
		"self":         obj{"readOnly": true, "type": "string"},
		"resource_type_associations": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
			"name": obj{"type": "string"}, "prefix": obj{"type": "string"}, "properties_target": obj{"type": "string"}}}},
		"properties": obj{"$ref": "#/definitions/property"},
		"objects": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"},
			"required": obj{"$ref": "#/definitions/stringArray"}, "properties": obj{"$ref": "#/definitions/property"}}}},
		"tags": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"name": obj{"type": "string"}}}},
	}, timestampFields("namespace"))
	return schema("namespace", props, []string{"namespace"}, metadefDefinitions(true, false))
}

func objectSchema() obj {
	props := withFields(obj{
		"name":        obj{"type": "string", "maxLength": 80},
		"description": obj{"type": "string"},
		"required":    obj{"$ref": "#/definitions/stringArray"},
		"properties":  obj{"$ref": "#/definitions/property"},
		"schema":      obj{"readOnly": true, "type": "string"},
		"self":        obj{"readOnly": true, "type": "string"},
	}, timestampFields("object"))
	return schema("object", props, []string{"name"}, metadefDefinitions(true, false))
}

func propertySchema(requireName bool) obj {
	required := []string{"type", "title"}
	if requireName {
		required = append(required, "name")
	}
	return schema("property", propertyFields(255), required, metadefDefinitions(false, true))
}

func resourceTypeSchema() obj {
	props := withFields(obj{
		"name":              obj{"type": "string", "maxLength": 80, "description": "Resource type names should be aligned with Heat resource types whenever possible: https://docs.openstack.org/heat/latest/template_guide/openstack.html"},
		"prefix":            obj{"type": "string", "maxLength": 80, "description": "Specifies the prefix to use for the given resource type. Any properties in the namespace should be prefixed with this prefix when being applied to the specified resource type. Must include prefix separator (e.g. a colon :)."},
		"properties_target": obj{"type": "string", "maxLength": 80, "description": "Some resource types allow more than one key / value pair per instance.  For example, Cinder allows user and image metadata on volumes. Only the image properties metadata is evaluated by Nova (scheduling or drivers). This property allows a namespace target to remove the ambiguity."},
	}, timestampFields("resource type association"))
	return schema("resource_type_association", props, []string{"name"}, nil)
}

func tagSchema() obj {
	return schema("tag", withFields(obj{"name": obj{"type": "string", "maxLength": 80}}, timestampFields("tag")), []string{"name"}, nil)
}

// metadefSchemas are the documents of GET /v2/schemas/metadefs/{name}.
var metadefSchemas = map[string]func() obj{
	"namespace":      namespaceSchema,
	"namespaces":     func() obj { return collectionSchema("namespaces", namespaceSchema(), false) },
	"object":         objectSchema,
	"objects":        func() obj { return collectionSchema("objects", objectSchema(), false) },
	"property":       func() obj { return propertySchema(true) },
	"properties":     func() obj { return collectionSchema("properties", propertySchema(false), true) },
	"resource_type":  resourceTypeSchema,
	"resource_types": func() obj { return collectionSchema("resource_type_associations", resourceTypeSchema(), false) },
	"tag":            tagSchema,
	"tags":           func() obj { return collectionSchema("tags", tagSchema(), false) },
}

// getMetadefSchema is GET /v2/schemas/metadefs/{name}; an unknown name is 404.
func (a *API) getMetadefSchema(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	build, ok := metadefSchemas[r.PathValue("name")]
	if !ok {
		return errorf(http.StatusNotFound, "The resource could not be found.")
	}
	return writeJSON(w, http.StatusOK, build())
}
