package profile

import (
	"fmt"
	"reflect"
	"strings"

	"refbridge"
)

// Direction is the way a record travels between the peers.
type Direction string

// The two directions, spelt as in the profile.
const (
	PrimeroToProgres Direction = "primero_to_progres"
	ProgresToPrimero Direction = "progres_to_primero"
)

// ConsentInput holds the records a consent rule may read: a Primero case and
// referral (Primero → proGres), or a proGres intervention (proGres → Primero).
// Nil records read as absent.
type ConsentInput struct {
	Case         *refbridge.Case
	Referral     *refbridge.Referral
	Intervention *refbridge.Intervention
}

// ConsentResult is the outcome of a consent rule. Reason is a plain sentence
// naming fields and expected values, never a person's data, fit for the
// operator console and the audit log.
type ConsentResult struct {
	OK     bool
	Reason string
	// Failed lists the conditions that did not hold when OK is false.
	Failed []ConsentFailure
	// Overridden is true when consent holds only through an override (for
	// example referral.consent_overridden); the audit must say so.
	Overridden bool
	// AttestedBy is the agency that vouches for consent under the ISP, when
	// the profile says so for this direction.
	AttestedBy string
}

// ConsentFailure is one condition of a consent rule that did not hold.
type ConsentFailure struct {
	Field  string // "record.field", e.g. "case.consent_for_services"
	Reason string // e.g. "case.consent_for_services is not true"
}

type condition struct {
	record string // "case", "referral" or "intervention"
	field  fieldRef
	want   any // bool or string
}

func (c condition) path() string { return c.record + "." + c.field.name }

// holds evaluates the condition; why is set when it does not hold.
func (c condition) holds(in ConsentInput) (ok bool, why string) {
	var rv reflect.Value
	switch c.record {
	case "case":
		if in.Case != nil {
			rv = reflect.ValueOf(in.Case).Elem()
		}
	case "referral":
		if in.Referral != nil {
			rv = reflect.ValueOf(in.Referral).Elem()
		}
	case "intervention":
		if in.Intervention != nil {
			rv = reflect.ValueOf(in.Intervention).Elem()
		}
	}
	if !rv.IsValid() {
		return false, fmt.Sprintf("%s is missing (no %s given)", c.path(), c.record)
	}
	got, present := c.field.read(rv)
	if !present {
		return false, c.path() + " is missing"
	}
	if got != c.want {
		return false, fmt.Sprintf("%s is not %v", c.path(), c.want)
	}
	return true, ""
}

// rule is a compiled consent rule for one direction.
type rule struct {
	all        []condition
	override   []condition
	attestedBy string
	okReason   string // fixed by the rule, so built once at load
}

// holdsReason is the reason given when every required condition holds.
func (r rule) holdsReason() string {
	var held []string
	for _, c := range r.all {
		held = append(held, fmt.Sprintf("%s is %v", c.path(), c.want))
	}
	switch {
	case r.attestedBy != "" && len(held) > 0:
		return "consent attested by " + r.attestedBy + " under the ISP, and " + strings.Join(held, " and ")
	case r.attestedBy != "":
		return "consent attested by " + r.attestedBy + " under the ISP"
	}
	return "consent given: " + strings.Join(held, " and ")
}

// Consent evaluates the profile's consent rule for dir on in. Consent holds
// when every required condition holds (and, if the profile names one, under
// the attestation of the sending agency), or when one of the override
// conditions the profile allows holds.
func (p *Profile) Consent(dir Direction, in ConsentInput) ConsentResult {
	r, ok := p.consent[dir]
	if !ok {
		return ConsentResult{Reason: "the profile has no consent rule for " + string(dir)}
	}
	var why []string
	var failed []ConsentFailure
	for _, c := range r.all {
		if ok, w := c.holds(in); !ok {
			why = append(why, w)
			failed = append(failed, ConsentFailure{Field: c.path(), Reason: w})
		}
	}
	if len(why) == 0 {
		return ConsentResult{OK: true, AttestedBy: r.attestedBy, Reason: r.okReason}
	}
	for _, c := range r.override {
		if ok, _ := c.holds(in); ok {
			return ConsentResult{OK: true, Overridden: true, AttestedBy: r.attestedBy,
				Reason: fmt.Sprintf("consent overridden: %s is %v, which the profile accepts", c.path(), c.want)}
		}
	}
	return ConsentResult{Reason: "consent missing: " + strings.Join(why, "; "), Failed: failed}
}

// ConsentHolds reports whether the profile's consent rule for dir holds for
// in, with a plain reason either way (see Consent).
func (p *Profile) ConsentHolds(dir Direction, in ConsentInput) (ok bool, reason string) {
	r := p.Consent(dir, in)
	return r.OK, r.Reason
}

// directionRecords lists the records each direction's rule may read.
func directionRecords(dir Direction) []string {
	if dir == PrimeroToProgres {
		return []string{"case", "referral"}
	}
	return []string{"intervention"}
}
