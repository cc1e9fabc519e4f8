package profile

import (
	"reflect"
	"slices"
	"strings"

	"refbridge"
)

// Kind names one message refbridge writes to a peer. Each kind has its own
// ISP allow-list, named in the profile by the same dotted path.
type Kind string

// The messages refbridge writes, by direction.
const (
	// KindCase is the Primero case body built from a proGres intervention.
	KindCase Kind = "progres_to_primero.case"
	// KindReferralDecision is the Primero referral PATCH built from a DTP decision.
	KindReferralDecision Kind = "progres_to_primero.referral_decision"
	// KindDTPReferral is the DTP ReceiveIncomingReferral body.
	KindDTPReferral Kind = "primero_to_progres.referral"
	// KindDTPStatus is the DTP ReceiveDecisionOutgoingReferral body (callbacks and decisions).
	KindDTPStatus Kind = "primero_to_progres.status"
)

// Kinds lists every message kind.
func Kinds() []Kind {
	return []Kind{KindCase, KindReferralDecision, KindDTPReferral, KindDTPStatus}
}

// servicesField is the case subform whose items are allow-listed one field at
// a time, as "services_section.<field>".
const servicesField = "services_section"

// Message is a domain type refbridge writes to a peer.
type Message interface {
	refbridge.Case | refbridge.Referral | refbridge.DTPReferral | refbridge.InterventionStatus
}

// KindOf returns the kind of message T is.
func KindOf[T Message]() Kind {
	var zero T
	switch any(zero).(type) {
	case refbridge.Case:
		return KindCase
	case refbridge.Referral:
		return KindReferralDecision
	case refbridge.DTPReferral:
		return KindDTPReferral
	}
	return KindDTPStatus
}

func messageType(kind Kind) reflect.Type {
	switch kind {
	case KindCase:
		return reflect.TypeFor[refbridge.Case]()
	case KindReferralDecision:
		return reflect.TypeFor[refbridge.Referral]()
	case KindDTPReferral:
		return reflect.TypeFor[refbridge.DTPReferral]()
	case KindDTPStatus:
		return reflect.TypeFor[refbridge.InterventionStatus]()
	}
	return nil
}

// jsonField returns the wire name of a struct field and whether encoding/json
// leaves it out when zero.
func jsonField(f reflect.StructField) (name string, omitted bool) {
	tag := f.Tag.Get("json")
	if tag == "-" || !f.IsExported() {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
}

// Fields returns the contract's field names for kind's message, read from the
// domain types' JSON tags so the list cannot drift from what is encoded.
// Case subform fields are "services_section.<field>".
func Fields(kind Kind) []string {
	t := messageType(kind)
	if t == nil {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		name, _ := jsonField(t.Field(i))
		switch {
		case name == "":
		case kind == KindCase && name == servicesField:
			st := reflect.TypeFor[refbridge.Service]()
			for j := range st.NumField() {
				if sn, _ := jsonField(st.Field(j)); sn != "" {
					out = append(out, servicesField+"."+sn)
				}
			}
		default:
			out = append(out, name)
		}
	}
	return out
}

// wireRequired lists the fields of kind that a flow cannot do without: the
// keys peers correlate on, and for DTP messages every string field the wire
// type always encodes (no omitempty), which an allow-list could only blank.
func wireRequired(kind Kind) []string {
	switch kind {
	case KindCase:
		// The upsert key and the service's idempotency keys (DESIGN invariant 2).
		return []string{"unhcr_individual_no", "services_section.unique_id", "services_section.progres_interventionnumber"}
	case KindReferralDecision:
		return []string{"status"}
	case KindDTPReferral:
		// DTP refuses a referral without these (contract progres-dtp §3.3):
		// it routes by service and finds the person by individual number.
		return []string{"primero_user", "position", "email", "phone", "full_name", "request_type",
			"service_implementing_agency", "service_type", "owned_by_agency_id", "unhcr_individual_no", "id"}
	}
	t := messageType(kind)
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, omitted := jsonField(f); name != "" && !omitted && f.Type.Kind() == reflect.String {
			out = append(out, name)
		}
	}
	return out
}

// plan is an allow-list compiled for one message type: the struct fields to
// blank, found once at load so that applying it costs no lookups.
type plan struct {
	names       []string
	allowed     map[string]bool
	zero        []int
	services    bool
	zeroService []int
}

func newPlan(kind Kind, names []string) *plan {
	pl := &plan{allowed: make(map[string]bool, len(names))}
	for _, n := range names {
		if !pl.allowed[n] {
			pl.allowed[n] = true
			pl.names = append(pl.names, n)
		}
	}
	slices.Sort(pl.names)
	t := messageType(kind)
	for i := range t.NumField() {
		name, _ := jsonField(t.Field(i))
		if kind == KindCase && name == servicesField {
			st := reflect.TypeFor[refbridge.Service]()
			for j := range st.NumField() {
				sn, _ := jsonField(st.Field(j))
				if pl.allowed[servicesField+"."+sn] {
					pl.services = true
				} else {
					pl.zeroService = append(pl.zeroService, j)
				}
			}
			continue
		}
		if !pl.allowed[name] {
			pl.zero = append(pl.zero, i)
		}
	}
	if kind == KindCase && !pl.services {
		pl.zero = append(pl.zero, fieldIndex(t, servicesField))
	}
	return pl
}

func fieldIndex(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if n, _ := jsonField(t.Field(i)); n == name {
			return i
		}
	}
	return -1
}

// isp is the compiled allow-lists: one plan per kind, and narrower plans for
// agencies whose own ISP shares less.
type isp struct {
	plans          map[Kind]*plan
	agencies       map[string]map[Kind]*plan
	commentAuthors bool
}

func (p *Profile) plan(kind Kind, agency string) *plan {
	if a, ok := p.isp.agencies[agency]; ok {
		if pl, ok := a[kind]; ok {
			return pl
		}
	}
	return p.isp.plans[kind]
}

// AllowedFields returns the allow-listed field names of kind for a message
// shared with or by agency (a Primero agency code; "" for the profile's
// general list), sorted.
func (p *Profile) AllowedFields(kind Kind, agency string) []string {
	return slices.Clone(p.plan(kind, agency).names)
}

// Allows reports whether field of kind may be shared with or by agency.
func (p *Profile) Allows(kind Kind, agency, field string) bool {
	return p.plan(kind, agency).allowed[field]
}

// CommentAuthorsAllowed reports whether the ISP lets the names of proGres
// staff who wrote reason-for-referral comments into Primero.
func (p *Profile) CommentAuthorsAllowed() bool { return p.isp.commentAuthors }

// Restrict blanks every field of v that the ISP does not allow for agency
// (the Primero-side agency of the exchange). It is the last step of every
// mapping that builds a message for a peer (DESIGN invariant 4): fields that
// are not allow-listed never leave.
func Restrict[T Message](p *Profile, agency string, v *T) {
	pl := p.plan(KindOf[T](), agency)
	rv := reflect.ValueOf(v).Elem()
	for _, i := range pl.zero {
		// Most fields a mapping leaves out are zero already; clearing them
		// again would only cost write barriers.
		if f := rv.Field(i); !f.IsZero() {
			f.SetZero()
		}
	}
	c, isCase := any(v).(*refbridge.Case)
	if !isCase || len(pl.zeroService) == 0 {
		return
	}
	for k := range c.Services {
		sv := reflect.ValueOf(&c.Services[k]).Elem()
		for _, i := range pl.zeroService {
			if f := sv.Field(i); !f.IsZero() {
				f.SetZero()
			}
		}
	}
}

// recordTypes are the records a consent condition can read, by the prefix
// its field name carries.
func recordType(prefix string) reflect.Type {
	switch prefix {
	case "case":
		return reflect.TypeFor[refbridge.Case]()
	case "referral":
		return reflect.TypeFor[refbridge.Referral]()
	case "intervention":
		return reflect.TypeFor[refbridge.Intervention]()
	}
	return nil
}

// fieldRef locates a readable scalar field of a record.
type fieldRef struct {
	name  string
	index int
	kind  valueKind
}

type valueKind int

const (
	kindString valueKind = iota
	kindBool
	kindBoolPtr
	kindFlexBool
	kindLookup
)

// scalarField finds the field of t with JSON name name, if its value can be
// read as one string or boolean.
func scalarField(t reflect.Type, name string) (fieldRef, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if n, _ := jsonField(f); n != name {
			continue
		}
		ref := fieldRef{name: name, index: i}
		switch {
		case f.Type.Kind() == reflect.String:
			ref.kind = kindString
		case f.Type.Kind() == reflect.Bool:
			ref.kind = kindBool
		case f.Type == reflect.TypeFor[*bool]():
			ref.kind = kindBoolPtr
		case f.Type == reflect.TypeFor[*refbridge.FlexBool]():
			ref.kind = kindFlexBool
		case f.Type == reflect.TypeFor[*refbridge.Lookup]():
			ref.kind = kindLookup
		default:
			return fieldRef{}, false
		}
		return ref, true
	}
	return fieldRef{}, false
}

// present reports whether the field holds a value: a non-blank string or
// lookup name, a non-nil pointer. It boxes nothing, as the inbox calls it for
// every required field of every intervention.
func (r fieldRef) present(rv reflect.Value) bool {
	f := rv.Field(r.index)
	switch r.kind {
	case kindString:
		return strings.TrimSpace(f.String()) != ""
	case kindBool:
		return true
	case kindBoolPtr, kindFlexBool:
		return !f.IsNil()
	case kindLookup:
		// A pointer fits in an interface word: Interface does not allocate.
		return strings.TrimSpace(refbridge.LookupName(f.Interface().(*refbridge.Lookup))) != ""
	}
	return false
}

// read returns the field's value as a string or bool, and false when it is
// absent (nil pointer, empty string, blank lookup name).
func (r fieldRef) read(rv reflect.Value) (any, bool) {
	f := rv.Field(r.index)
	switch r.kind {
	case kindString:
		s := f.String()
		return s, strings.TrimSpace(s) != ""
	case kindBool:
		return f.Bool(), true
	case kindBoolPtr:
		if f.IsNil() {
			return nil, false
		}
		return f.Elem().Bool(), true
	case kindFlexBool:
		if f.IsNil() {
			return nil, false
		}
		return f.Interface().(*refbridge.FlexBool).Value, true
	case kindLookup:
		name := refbridge.LookupName(f.Interface().(*refbridge.Lookup))
		return name, strings.TrimSpace(name) != ""
	}
	return nil, false
}

// interventionFields lists the intervention keys DTP sends (contract §2.3),
// from the domain type's JSON tags.
func interventionFields() []string {
	t := reflect.TypeFor[refbridge.Intervention]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if n, _ := jsonField(t.Field(i)); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// contactFields are the user record fields a referral's contact block is
// made of (contract §3.2); the profile picks which of them must be present.
func contactFields() []string {
	return []string{"full_name", "email", "phone", "position"}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
