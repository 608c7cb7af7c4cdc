// Package metadefs is Glance's metadata definitions catalog (Image API 2.2+): namespaces
// of typed properties, objects grouping properties, tags, and the resource types a
// namespace applies to (with the prefix its property names take there). It holds the
// model, the checks of client input (Glance's JSON schemas), the store over the metadata
// store, the loader of definition files (Glance's etc/metadefs, embedded in definitions/)
// and the check of image properties against the definitions. Section numbers (§2.x) refer
// to shared/reference/glance-next.md.
package metadefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xloud/xloud-image/catalog"
)

// Limits of names and texts (Glance's schemas and database columns, §2.2).
const (
	MaxNameLen        = 80  // namespace, object, property, tag, resource type, prefix, properties_target
	MaxDescriptionLen = 500 // namespace description
	MaxOwnerLen       = 255
	// Bounds a namespace's contents so one record stays small enough to read per request.
	MaxChildren = 2000
)

// Visibilities of a namespace.
const (
	Public  = "public"
	Private = "private"
)

// Timestamp is a time rendered as Glance renders it: seconds, UTC, with a Z.
type Timestamp struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05Z"

// MarshalJSON renders the time in Glance's form.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(timeLayout))
}

// UnmarshalJSON reads Glance's form or RFC 3339.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

func now(clock func() time.Time) Timestamp { return Timestamp{clock().UTC().Truncate(time.Second)} }

// Property is one typed property: a subset of JSON Schema (§2.2). Its name is the key it
// is stored under; Name is set only where one property is shown on its own.
type Property struct {
	Name            string          `json:"name,omitempty"`
	Title           string          `json:"title"`
	Description     *string         `json:"description,omitempty"`
	Operators       []string        `json:"operators,omitempty"`
	Type            *string         `json:"type"`
	Required        []string        `json:"required,omitempty"`
	Minimum         *float64        `json:"minimum,omitempty"`
	Maximum         *float64        `json:"maximum,omitempty"`
	MaxLength       *int64          `json:"maxLength,omitempty"`
	MinLength       *int64          `json:"minLength,omitempty"`
	Pattern         *string         `json:"pattern,omitempty"`
	Enum            []any           `json:"enum,omitempty"`
	Readonly        *bool           `json:"readonly,omitempty"`
	Default         json.RawMessage `json:"default,omitempty"`
	Items           *Items          `json:"items,omitempty"`
	MaxItems        *int64          `json:"maxItems,omitempty"`
	MinItems        *int64          `json:"minItems,omitempty"`
	UniqueItems     *bool           `json:"uniqueItems,omitempty"`
	AdditionalItems *bool           `json:"additionalItems,omitempty"`
}

// Items types the members of an array property.
type Items struct {
	Type *string `json:"type,omitempty"`
	Enum []any   `json:"enum,omitempty"`
}

// Object groups properties under a name.
type Object struct {
	Name        string              `json:"name"`
	Description *string             `json:"description,omitempty"`
	Required    []string            `json:"required,omitempty"`
	Properties  map[string]Property `json:"properties,omitempty"`
	CreatedAt   Timestamp           `json:"created_at"`
	UpdatedAt   Timestamp           `json:"updated_at"`
}

// Tag is a keyless label of a namespace.
type Tag struct {
	Name      string    `json:"name"`
	CreatedAt Timestamp `json:"created_at"`
	UpdatedAt Timestamp `json:"updated_at"`
}

// Association says a namespace applies to a resource type, and how its property names
// appear there: Prefix in front of each, and on which part of the resource
// (PropertiesTarget, e.g. a volume's image metadata).
type Association struct {
	Name             string    `json:"name"`
	Prefix           *string   `json:"prefix,omitempty"`
	PropertiesTarget *string   `json:"properties_target,omitempty"`
	CreatedAt        Timestamp `json:"created_at"`
	UpdatedAt        Timestamp `json:"updated_at"`
}

// ResourceType is a kind of resource namespaces apply to (OS::Glance::Image …). Protected
// ones are the seeded types, never removed.
type ResourceType struct {
	Name      string    `json:"name"`
	Protected bool      `json:"-"`
	CreatedAt Timestamp `json:"created_at"`
	UpdatedAt Timestamp `json:"updated_at"`
}

// resourceTypeRecord is a ResourceType as stored (Protected kept).
type resourceTypeRecord struct {
	Name      string    `json:"name"`
	Protected bool      `json:"protected"`
	CreatedAt Timestamp `json:"created_at"`
	UpdatedAt Timestamp `json:"updated_at"`
}

// Namespace is a namespace with its contents. Owner is a project id ("" for none: visible
// to all, as Glance's seeded namespaces loaded without an owner).
type Namespace struct {
	Namespace    string              `json:"namespace"`
	DisplayName  *string             `json:"display_name,omitempty"`
	Description  *string             `json:"description,omitempty"`
	Visibility   string              `json:"visibility"`
	Protected    bool                `json:"protected"`
	Owner        string              `json:"owner,omitempty"`
	CreatedAt    Timestamp           `json:"created_at"`
	UpdatedAt    Timestamp           `json:"updated_at"`
	Associations []Association       `json:"resource_type_associations,omitempty"`
	Properties   map[string]Property `json:"properties,omitempty"`
	Objects      []Object            `json:"objects,omitempty"`
	Tags         []Tag               `json:"tags,omitempty"`
}

// Summary is the namespace without its contents but its associations, as lists show it.
func (ns Namespace) Summary() Namespace {
	ns.Properties, ns.Objects, ns.Tags = nil, nil, nil
	return ns
}

func (ns Namespace) clone() Namespace {
	b, _ := json.Marshal(ns)
	var out Namespace
	json.Unmarshal(b, &out)
	return out
}

// invalid is a 400 in the words of Glance's schema checks.
func invalid(schema, format string, a ...any) error {
	return &catalog.Error{Kind: catalog.BadRequest,
		Message: fmt.Sprintf("Provided object does not match schema '%s': %s", schema, fmt.Sprintf(format, a...))}
}

func notFound(format string, a ...any) error {
	return &catalog.Error{Kind: catalog.NotFound, Message: fmt.Sprintf(format, a...)}
}

func forbidden(format string, a ...any) error {
	return &catalog.Error{Kind: catalog.Forbidden, Message: fmt.Sprintf(format, a...)}
}

func conflict(format string, a ...any) error {
	return &catalog.Error{Kind: catalog.Conflict, Message: fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) error {
	return &catalog.Error{Kind: catalog.BadRequest, Message: fmt.Sprintf(format, a...)}
}

// decodeStrict decodes one JSON object into v, refusing unknown keys, trailing data and
// mistyped values, in schema terms.
func decodeStrict(schema string, b []byte, readOnly []string, v any) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil || keys == nil {
		return badRequest("The request body must be a JSON object.")
	}
	for _, k := range readOnly {
		if _, ok := keys[k]; ok {
			return forbidden("Attribute '%s' is read-only.", k)
		}
	}
	for k, raw := range keys {
		// JSON Schema types: null is no string, no boolean, no list.
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) && k != "default" && k != "type" {
			return invalid(schema, "None is not valid under any of the given schemas (%s)", k)
		}
	}
	// Only the top level is closed (additionalProperties: false); Glance's schemas leave the
	// items of nested lists open, and glanceclient sends back what it read (timestamps,
	// links) inside them.
	known := fieldNames(reflect.TypeOf(v).Elem())
	for k := range keys {
		if !known[k] {
			return invalid(schema, "Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return invalid(schema, "%s", schemaWords(err))
	}
	if dec.More() {
		return badRequest("The request body must be one JSON object.")
	}
	return nil
}

// fieldNames are the JSON names of a struct's fields.
func fieldNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// schemaWords says what encoding/json found wrong the way jsonschema says it.
func schemaWords(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("'%s' is not of type %s", field, jsonType(te.Type.Kind().String()))
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Sprintf("Additional properties are not allowed (%s was unexpected)", strings.ReplaceAll(f, `"`, "'"))
	}
	return strings.TrimPrefix(msg, "json: ")
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "'string'"
	case "bool":
		return "'boolean'"
	case "int64", "int":
		return "'integer'"
	case "float64":
		return "'number'"
	case "slice":
		return "'array'"
	}
	return "'object'"
}

// checkName refuses empty, overlong and unaddressable names: a name is a path segment of
// the API, so no slash and no control characters.
func checkName(schema, field, name string) error {
	switch {
	case name == "":
		return invalid(schema, "'%s' is a required property and may not be empty", field)
	case utf8.RuneCountInString(name) > MaxNameLen:
		return invalid(schema, "'%s' is too long (at most %d characters)", field, MaxNameLen)
	case !utf8.ValidString(name) || strings.ContainsRune(name, '/') || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return invalid(schema, "'%s' may not contain '/' or control characters", field)
	}
	return nil
}

func checkLen(schema, field string, s *string, max int) error {
	if s != nil && utf8.RuneCountInString(*s) > max {
		return invalid(schema, "'%s' is too long (at most %d characters)", field, max)
	}
	return nil
}

// propertyTypes are the types a property may have (null for none given).
var propertyTypes = map[string]bool{"array": true, "boolean": true, "integer": true, "number": true, "object": true, "string": true}

// checkProperty checks a property definition (name is its key).
func checkProperty(schema, name string, p *Property) error {
	if err := checkName(schema, "name", name); err != nil {
		return err
	}
	if p.Title == "" {
		return invalid(schema, "'title' is a required property (property %s)", name)
	}
	if p.Type != nil && !propertyTypes[*p.Type] {
		return invalid(schema, "'%s' is not one of ['array', 'boolean', 'integer', 'number', 'object', 'string', None] (property %s)", *p.Type, name)
	}
	if p.Items != nil && p.Items.Type != nil && !propertyTypes[*p.Items.Type] {
		return invalid(schema, "'%s' is not one of ['array', 'boolean', 'integer', 'number', 'object', 'string', None] (items of %s)", *p.Items.Type, name)
	}
	for _, n := range []*int64{p.MaxLength, p.MinLength, p.MaxItems, p.MinItems} {
		if n != nil && *n < 0 {
			return invalid(schema, "%d is less than the minimum of 0 (property %s)", *n, name)
		}
	}
	if p.Minimum != nil && p.Maximum != nil && *p.Minimum > *p.Maximum {
		return invalid(schema, "minimum %v is greater than maximum %v (property %s)", *p.Minimum, *p.Maximum, name)
	}
	if p.Pattern != nil {
		if _, err := regexp.Compile(*p.Pattern); err != nil {
			return invalid(schema, "'%s' is not a 'regex' (property %s)", *p.Pattern, name)
		}
	}
	if !uniqueStrings(p.Required) {
		return invalid(schema, "'required' has non-unique elements (property %s)", name)
	}
	p.Name = ""
	return nil
}

func uniqueStrings(s []string) bool {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func checkProperties(schema string, props map[string]Property) error {
	if len(props) > MaxChildren {
		return invalid(schema, "more than %d properties", MaxChildren)
	}
	for name, p := range props {
		if err := checkProperty(schema, name, &p); err != nil {
			return err
		}
		props[name] = p
	}
	return nil
}

// DecodeProperty reads a property definition; its name is required (the key it is stored
// under).
func DecodeProperty(b []byte) (string, Property, error) {
	var p Property
	if err := decodeStrict("property", b, []string{"created_at", "updated_at"}, &p); err != nil {
		return "", p, err
	}
	if p.Type == nil {
		return "", p, invalid("property", "'type' is a required property")
	}
	name := p.Name
	return name, p, checkProperty("property", name, &p)
}

type objectIn struct {
	Name        string              `json:"name"`
	Description *string             `json:"description"`
	Required    []string            `json:"required"`
	Properties  map[string]Property `json:"properties"`
}

func (in objectIn) check() (Object, error) {
	if err := checkName("object", "name", in.Name); err != nil {
		return Object{}, err
	}
	if !uniqueStrings(in.Required) {
		return Object{}, invalid("object", "'required' has non-unique elements")
	}
	if err := checkProperties("object", in.Properties); err != nil {
		return Object{}, err
	}
	return Object{Name: in.Name, Description: in.Description, Required: in.Required, Properties: in.Properties}, nil
}

// DecodeObject reads an object definition.
func DecodeObject(b []byte) (Object, error) {
	var in objectIn
	if err := decodeStrict("object", b, []string{"self", "schema", "created_at", "updated_at"}, &in); err != nil {
		return Object{}, err
	}
	return in.check()
}

type tagIn struct {
	Name string `json:"name"`
}

// DecodeTag reads a tag ({"name": …}).
func DecodeTag(b []byte) (string, error) {
	var in tagIn
	if err := decodeStrict("tag", b, []string{"created_at", "updated_at"}, &in); err != nil {
		return "", err
	}
	return in.Name, checkName("tag", "name", in.Name)
}

// DecodeTags reads a bulk tag creation ({"tags": [{"name": …}, …]}); duplicates are 409
// (Glance's "Duplicate tag").
func DecodeTags(b []byte) ([]string, error) {
	var in struct {
		Tags []tagIn `json:"tags"`
	}
	if err := decodeStrict("tags", b, []string{"created_at", "updated_at"}, &in); err != nil {
		return nil, err
	}
	if len(in.Tags) > MaxChildren {
		return nil, invalid("tags", "more than %d tags", MaxChildren)
	}
	names := make([]string, 0, len(in.Tags))
	for _, t := range in.Tags {
		if err := checkName("tags", "name", t.Name); err != nil {
			return nil, err
		}
		names = append(names, t.Name)
	}
	if !uniqueStrings(names) {
		return nil, conflict("A metadata tag with name=%s already exists in the request.", firstDuplicate(names))
	}
	return names, nil
}

func firstDuplicate(s []string) string {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return v
		}
		seen[v] = true
	}
	return ""
}

type associationIn struct {
	Name             string  `json:"name"`
	Prefix           *string `json:"prefix"`
	PropertiesTarget *string `json:"properties_target"`
}

func (in associationIn) check() (Association, error) {
	if err := checkName("resource_type_association", "name", in.Name); err != nil {
		return Association{}, err
	}
	for f, s := range map[string]*string{"prefix": in.Prefix, "properties_target": in.PropertiesTarget} {
		if err := checkLen("resource_type_association", f, s, MaxNameLen); err != nil {
			return Association{}, err
		}
	}
	return Association{Name: in.Name, Prefix: in.Prefix, PropertiesTarget: in.PropertiesTarget}, nil
}

// DecodeAssociation reads a resource type association.
func DecodeAssociation(b []byte) (Association, error) {
	var in associationIn
	if err := decodeStrict("resource_type_association", b, []string{"created_at", "updated_at"}, &in); err != nil {
		return Association{}, err
	}
	return in.check()
}

type namespaceIn struct {
	Namespace    string              `json:"namespace"`
	DisplayName  *string             `json:"display_name"`
	Description  *string             `json:"description"`
	Visibility   *string             `json:"visibility"`
	Protected    *bool               `json:"protected"`
	Owner        *string             `json:"owner"`
	Associations []associationIn     `json:"resource_type_associations"`
	Properties   map[string]Property `json:"properties"`
	Objects      []objectIn          `json:"objects"`
	Tags         []tagIn             `json:"tags"`
}

// DecodeNamespace reads a namespace with whatever contents it carries (a create body, a
// PUT body, or a definition file). Visibility defaults to private; fields not given are
// unset (PUT replaces them, as Glance does).
func DecodeNamespace(b []byte) (Namespace, error) {
	var in namespaceIn
	if err := decodeStrict("namespace", b, []string{"self", "schema", "created_at", "updated_at"}, &in); err != nil {
		return Namespace{}, err
	}
	return in.check()
}

func (in namespaceIn) check() (Namespace, error) {
	const s = "namespace"
	if err := checkName(s, "namespace", in.Namespace); err != nil {
		return Namespace{}, err
	}
	if err := checkLen(s, "display_name", in.DisplayName, MaxNameLen); err != nil {
		return Namespace{}, err
	}
	if err := checkLen(s, "description", in.Description, MaxDescriptionLen); err != nil {
		return Namespace{}, err
	}
	if err := checkLen(s, "owner", in.Owner, MaxOwnerLen); err != nil {
		return Namespace{}, err
	}
	ns := Namespace{Namespace: in.Namespace, DisplayName: in.DisplayName, Description: in.Description, Visibility: Private}
	if in.Visibility != nil {
		if *in.Visibility != Public && *in.Visibility != Private {
			return ns, invalid(s, "'%s' is not one of ['public', 'private']", *in.Visibility)
		}
		ns.Visibility = *in.Visibility
	}
	if in.Protected != nil {
		ns.Protected = *in.Protected
	}
	if in.Owner != nil {
		ns.Owner = *in.Owner
	}
	if len(in.Objects) > MaxChildren || len(in.Tags) > MaxChildren || len(in.Associations) > MaxChildren {
		return ns, invalid(s, "more than %d objects, tags or resource type associations", MaxChildren)
	}
	if err := checkProperties(s, in.Properties); err != nil {
		return ns, err
	}
	ns.Properties = in.Properties
	for _, a := range in.Associations {
		as, err := a.check()
		if err != nil {
			return ns, err
		}
		if findAssociation(ns.Associations, as.Name) >= 0 {
			return ns, conflict("Resource type association %s appears twice in namespace %s", as.Name, ns.Namespace)
		}
		ns.Associations = append(ns.Associations, as)
	}
	for _, o := range in.Objects {
		obj, err := o.check()
		if err != nil {
			return ns, err
		}
		if findObject(ns.Objects, obj.Name) >= 0 {
			return ns, conflict("A metadata definition object with name=%s already exists in namespace=%s.", obj.Name, ns.Namespace)
		}
		ns.Objects = append(ns.Objects, obj)
	}
	for _, t := range in.Tags {
		if err := checkName(s, "name", t.Name); err != nil {
			return ns, err
		}
		if findTag(ns.Tags, t.Name) >= 0 {
			return ns, conflict("A metadata tag with name=%s already exists in namespace=%s.", t.Name, ns.Namespace)
		}
		ns.Tags = append(ns.Tags, Tag{Name: t.Name})
	}
	return ns, nil
}

func findAssociation(as []Association, name string) int {
	for i, a := range as {
		if a.Name == name {
			return i
		}
	}
	return -1
}

func findObject(os []Object, name string) int {
	for i, o := range os {
		if o.Name == name {
			return i
		}
	}
	return -1
}

func findTag(ts []Tag, name string) int {
	for i, t := range ts {
		if t.Name == name {
			return i
		}
	}
	return -1
}
