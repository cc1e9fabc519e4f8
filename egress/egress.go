// Package egress is the EgressFilter: the only place a peer request body is
// finalised (DESIGN invariant 4, need to know).
//
// Filter applies the country profile's ISP allow-list for the message's kind
// and the Primero-side agency, and seals the result in a Message. The Primero
// and DTP clients accept nothing else as a request body, and a Message can
// only be sealed here (its fields are unexported, and the zero Message is
// refused), so no other code path can build a body for a peer: the compiler
// enforces the invariant. A sealed Message cannot be changed afterwards:
// Value returns a deep copy, and the body is encoded once, when it is sealed.
package egress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"refbridge"
	"refbridge/profile"
)

// Body is a message refbridge writes to a peer: the four kinds the ISP
// allow-lists (profile.Message), and the sync status refbridge writes back to
// a Primero case, which carries refbridge's own bookkeeping, never a child's
// data, and has a fixed allow-list here.
type Body interface {
	profile.Message | refbridge.SyncStatus
}

// servicesField is the case subform whose items are allow-listed one field
// at a time, as "services_section.<field>".
const servicesField = "services_section"

// syncStatusField reports whether name is one of the sync status fields
// (primero-v2 §7) — the fixed allow-list of a SyncStatus body. A field
// added to SyncStatus without being named here is refused at Filter.
func syncStatusField(name string) bool {
	switch name {
	case "mark_synced", "mark_synced_url", "mark_synced_status":
		return true
	}
	return false
}

// Message is a request body that passed the EgressFilter: the value
// restricted to the allow-list, encoded as it goes to the peer, and the names
// of the fields it carries. Only Filter seals one; the zero Message is
// invalid and every client refuses it (see Err).
type Message[T Body] struct {
	value  T
	body   []byte
	fields []string
	sealed bool
	err    error
}

// Filter restricts v to the ISP allow-list of its kind for agency (the
// Primero-side agency of the exchange, a Primero agency code; "" for the
// profile's general list) and seals the result. v is not changed. Every
// top-level field (and every services_section item field) the encoded body
// carries is checked against the allow-list again: a body that still holds a
// field the profile does not allow is not sealed, so it cannot be sent.
func Filter[T Body](p *profile.Profile, agency string, v T) Message[T] {
	if p == nil {
		return Message[T]{err: refbridge.Errorf(refbridge.EInternal, "egress: no profile, so no allow-list to apply")}
	}
	// A deep copy: Restrict writes into the value, and the caller's slices
	// and pointers must neither be changed nor be able to change the body.
	v = deepCopy(v)
	var kind profile.Kind // "" for the sync status and its fixed list
	switch x := any(&v).(type) {
	case *refbridge.Case:
		profile.Restrict(p, agency, x)
		kind = profile.KindCase
	case *refbridge.Referral:
		profile.Restrict(p, agency, x)
		kind = profile.KindReferralDecision
	case *refbridge.DTPReferral:
		profile.Restrict(p, agency, x)
		kind = profile.KindDTPReferral
	case *refbridge.InterventionStatus:
		profile.Restrict(p, agency, x)
		kind = profile.KindDTPStatus
	case *refbridge.SyncStatus:
		// Nothing to blank: every field is a sync status field, as
		// checkFields verifies on the encoded body.
	}
	allows := func(field string) bool {
		if kind == "" {
			return syncStatusField(field)
		}
		return p.Allows(kind, agency, field)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return Message[T]{err: &refbridge.Error{Code: refbridge.EInternal, Message: "egress: encode body", Err: err}}
	}
	fields, err := checkFields(body, kind == profile.KindCase, allows)
	if err != nil {
		return Message[T]{err: err}
	}
	return Message[T]{value: v, body: body, fields: fields, sealed: true}
}

// checkFields returns the sorted names of the top-level fields body carries
// (null carries nothing: the wire format names some fields even when they
// are not shared), and an error naming the first one allows refuses.
// With subform set, services_section items are checked field by field.
func checkFields(body []byte, subform bool, allows func(string) bool) ([]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, &refbridge.Error{Code: refbridge.EInternal, Message: "egress: the body is not a JSON object", Err: err}
	}
	refuse := func(field string) error {
		// A field name is safe to report; its value never is.
		return refbridge.Errorf(refbridge.EInternal, "egress: the body carries %s, which the ISP allow-list does not name", field)
	}
	fields := make([]string, 0, len(obj))
	for name, raw := range obj {
		if string(raw) == "null" {
			continue
		}
		fields = append(fields, name)
		if !subform || name != servicesField {
			if !allows(name) {
				return nil, refuse(name)
			}
			continue
		}
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, &refbridge.Error{Code: refbridge.EInternal, Message: "egress: services_section is not a list of objects", Err: err}
		}
		for _, it := range items {
			for sub, sv := range it {
				if string(sv) != "null" && !allows(servicesField+"."+sub) {
					return nil, refuse(servicesField + "." + sub)
				}
			}
		}
	}
	slices.Sort(fields)
	return fields, nil
}

// Err returns nil for a message Filter sealed. Otherwise it is the reason the
// message may not be sent, which a client returns instead of sending it: an
// invalid error for the zero Message, which never passed the filter, or the
// internal error that kept Filter from sealing it.
func (m Message[T]) Err() error {
	switch {
	case m.sealed:
		return nil
	case m.err != nil:
		return m.err
	}
	return refbridge.Errorf(refbridge.EInvalid, "egress: the %s body did not pass the ISP filter (build it with egress.Filter)", typeName[T]())
}

// Value returns a deep copy of the filtered value, for a client to read (an
// id to put in the URL, the intervention number of a callback) or to adapt
// to a request shape; changing it cannot change the Message.
func (m Message[T]) Value() T { return deepCopy(m.value) }

// Fields returns the sorted names of the top-level fields the body carries
// (all but those sent as null), for the audit trail: names, never values.
func (m Message[T]) Fields() []string { return slices.Clone(m.fields) }

// MarshalJSON returns the body as Filter encoded it. An unsealed Message
// does not encode: the error stops it from going out as an empty body.
func (m Message[T]) MarshalJSON() ([]byte, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	return bytes.Clone(m.body), nil
}

// String names the message's type and fields, never its values, so that a
// Message printed by mistake leaks nothing.
func (m Message[T]) String() string {
	if !m.sealed {
		return "egress.Message[" + typeName[T]() + "](unfiltered)"
	}
	return "egress.Message[" + typeName[T]() + "]{" + strings.Join(m.fields, " ") + "}"
}

// LogValue keeps structured logs to the field names too (a JSON handler would
// otherwise encode the body).
func (m Message[T]) LogValue() slog.Value { return slog.StringValue(m.String()) }

func typeName[T any]() string { return fmt.Sprintf("%T", *new(T)) }

// deepCopy returns v with every pointer, slice and map it holds copied, so
// that the copy shares no memory the original can reach.
func deepCopy[T any](v T) T {
	deepen(reflect.ValueOf(&v).Elem())
	return v
}

// deepen replaces the references held by v (settable) with copies. Struct
// fields that are not exported (time.Time's) are values or immutable and are
// left as the struct copy has them.
func deepen(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(v.Elem())
		deepen(n.Elem())
		v.Set(n)
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(n, v)
		if holdsReferences(v.Type().Elem()) {
			for i := range n.Len() {
				deepen(n.Index(i))
			}
		}
		v.Set(n)
	case reflect.Map:
		if v.IsNil() {
			return
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			deepen(e)
			n.SetMapIndex(it.Key(), e)
		}
		v.Set(n)
	case reflect.Array:
		for i := range v.Len() {
			deepen(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				deepen(f)
			}
		}
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := reflect.New(v.Elem().Type()).Elem()
		e.Set(v.Elem())
		deepen(e)
		v.Set(e)
	}
}

// holdsReferences reports whether a value of type t may hold a pointer,
// slice or map to copy; a []string or a json.RawMessage copied whole needs
// no visit per element.
func holdsReferences(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Array, reflect.Struct, reflect.Interface:
		return true
	}
	return false
}
