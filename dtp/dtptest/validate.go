package dtptest

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"refbridge"
)

// Validation is deliberately stricter than DTP is known to be (its schema is
// not published): an unknown key, a wrong JSON type, a missing key a flow
// depends on or a code outside the contract's vocabulary is refused with 400,
// so a regression in refbridge's egress shows up in tests instead of in
// proGres. Every Problem names the field and the rule and never quotes the
// value, which may be personal data.

// presence says how a key may appear in a message.
type presence int

const (
	required presence = iota // a non-empty string
	optional                 // absent, or a string (possibly empty)
	nullable                 // absent, null, or a string
	keyed                    // present, null or a string: the key itself is part of the shape
)

// referralFields is the ReceiveIncomingReferral body (contract §3.3).
var referralFields = map[string]presence{
	"primero_user":                required,
	"position":                    required,
	"email":                       required,
	"phone":                       required,
	"full_name":                   required,
	"request_type":                required,
	"service_implementing_agency": required,
	"service_response_day_time":   optional,
	// The reference drops service_type when its map has no entry (contract
	// §8.15); DTP cannot route such a referral, so refbridge must not send it.
	"service_type":           required,
	"service_type_other":     nullable,
	"service_referral_notes": optional,
	"owned_by_agency_id":     required,
	// The individual number is how proGres finds the person; without it the
	// referral can only come back "Individual Not Found".
	"unhcr_individual_no": required,
	"unhcr_id_no":         optional,
	"name_first":          optional,
	"name_last":           optional,
	"name_middle":         nullable,
	"name_nickname":       nullable,
	"date_of_birth":       optional,
	"sex":                 optional,
	"address_current":     optional,
	"telephone_current":   nullable,
	"language":            nullable,
	"id":                  required,
}

// statusFields is the ReceiveDecisionOutgoingReferral body (contract §2.7–2.9).
// case_id and primero_user are always sent, as null when no case exists.
var statusFields = map[string]presence{
	"case_id":                    keyed,
	"primero_user":               keyed,
	"progres_interventionnumber": required,
	"status":                     required,
	"closure_reason":             optional,
	"request_type":               optional,
}

// statusRequestType pairs each callback status with the request_type the
// contract sends with it ("" = the key is absent, as in the success callback).
var statusRequestType = map[string]string{
	refbridge.StatusPendingAcknowledgement: "",
	refbridge.StatusDeliveryFail:           refbridge.RequestTypeFeedback,
	refbridge.StatusAcknowledged:           refbridge.RequestTypeDecisionOutgoingReferral,
	refbridge.StatusRejected:               refbridge.RequestTypeDecisionOutgoingReferral,
}

var (
	// orgReferralID is "<case_id>#<last 12 characters of the service
	// unique_id>" (contract §3.3); DTP returns it as progres_orgreferralid.
	orgReferralID = regexp.MustCompile(`^[^#\s]+#[0-9A-Fa-f]{12}$`)
	dtpSex        = []string{"male", "female", "other", "unknown"}
)

// problems collects Problems for one message.
type problems []refbridge.Problem

func (p *problems) add(field, rule, detail string) {
	*p = append(*p, refbridge.Problem{Field: field, Rule: rule, Detail: detail})
}

// checkContentType refuses a body not declared as JSON.
func checkContentType(h http.Header, p *problems) {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		p.add("Content-Type", "format", "must be application/json")
	}
}

// checkShape decodes body as a JSON object and checks every key against
// fields. It returns the object's string values; null and absent keys have
// no entry.
func checkShape(body []byte, fields map[string]presence, p *problems) (map[string]string, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		p.add("body", "json", "must be one JSON object")
		return nil, false
	}
	values := make(map[string]string, len(obj))
	for key, raw := range obj {
		pr, known := fields[key]
		if !known {
			p.add(key, "unknown_field", "not a field of this message")
			continue
		}
		raw = bytes.TrimSpace(raw)
		if string(raw) == "null" {
			if pr == required || pr == optional {
				p.add(key, "type", "must be a string, not null")
			}
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			p.add(key, "type", "must be a string")
			continue
		}
		values[key] = s
	}
	for key, pr := range fields {
		_, present := obj[key]
		s, isString := values[key]
		switch {
		case !present && (pr == required || pr == keyed):
			p.add(key, "required", "is missing")
		case pr == required && isString && s == "":
			p.add(key, "required", "must not be empty")
		}
	}
	return values, true
}

// validateReferral checks a ReceiveIncomingReferral body.
func validateReferral(h http.Header, body []byte) (*refbridge.DTPReferral, []refbridge.Problem) {
	var p problems
	checkContentType(h, &p)
	v, ok := checkShape(body, referralFields, &p)
	if ok {
		if rt := v["request_type"]; rt != "" && rt != refbridge.RequestTypeIncomingReferral {
			p.add("request_type", "unknown_code", "must be "+refbridge.RequestTypeIncomingReferral)
		}
		if id := v["id"]; id != "" && !orgReferralID.MatchString(id) {
			p.add("id", "format", "must be <case_id>#<last 12 hex digits of the service unique_id>")
		}
		if dob := v["date_of_birth"]; dob != "" {
			if _, err := time.Parse(time.DateOnly, dob); err != nil {
				p.add("date_of_birth", "format", "must be YYYY-MM-DD")
			}
		}
		if sex := v["sex"]; sex != "" && !slices.Contains(dtpSex, sex) {
			p.add("sex", "unknown_code", "must be one of "+strings.Join(dtpSex, ", "))
		}
	}
	var ref *refbridge.DTPReferral
	if ok {
		ref = new(refbridge.DTPReferral)
		if err := json.Unmarshal(body, ref); err != nil {
			ref = nil // types were already reported above
		}
	}
	return ref, p.sorted()
}

// validateStatus checks a ReceiveDecisionOutgoingReferral body: an intake
// callback (Pending Acknowledgement / Delivery Fail) or a decision
// (acknowledged / rejected).
func validateStatus(h http.Header, body []byte) (*refbridge.InterventionStatus, []refbridge.Problem) {
	var p problems
	checkContentType(h, &p)
	v, ok := checkShape(body, statusFields, &p)
	if ok {
		status := v["status"]
		wantType, known := statusRequestType[status]
		switch {
		case status == "":
			// reported by checkShape
		case !known:
			p.add("status", "unknown_code", "must be Pending Acknowledgement, Delivery Fail, acknowledged or rejected")
		case v["request_type"] != wantType && wantType == "":
			p.add("request_type", "mismatch", "must be absent for status "+status)
		case v["request_type"] != wantType:
			p.add("request_type", "mismatch", "must be "+wantType+" for status "+status)
		}
		if known && status != refbridge.StatusDeliveryFail {
			// Only a failed delivery may lack a case: every other status
			// reports on a case that exists.
			for _, key := range []string{"case_id", "primero_user"} {
				if v[key] == "" {
					p.add(key, "required", "must be set for status "+status)
				}
			}
		}
		if (status == refbridge.StatusDeliveryFail || status == refbridge.StatusRejected) && v["closure_reason"] == "" {
			p.add("closure_reason", "required", "must say why for status "+status)
		}
	}
	var st *refbridge.InterventionStatus
	if ok {
		st = new(refbridge.InterventionStatus)
		if err := json.Unmarshal(body, st); err != nil {
			st = nil
		}
	}
	return st, p.sorted()
}

// sorted orders problems by field then rule, so answers are deterministic
// despite map iteration.
func (p problems) sorted() []refbridge.Problem {
	slices.SortFunc(p, func(a, b refbridge.Problem) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return p
}
