package primero

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"refbridge"
)

// Problem rules this package reports, beyond the generic "invalid".
const (
	// RuleConsentMissing: a referral was refused because the case has no
	// consent and consent was not overridden.
	RuleConsentMissing = "consent_missing"
	// RuleCannotReceive: the referral's recipient may not receive referrals.
	RuleCannotReceive = "cannot_receive"
	// RuleInvalid: Primero refused the value of a field.
	RuleInvalid = "invalid"
)

// errorEnvelope is Primero's error body (contract §5). The key is "status"
// (the 2019 docs say "code"); message is a string or, for model validation,
// an array; detail is optional, a string or an array of JSON pointers.
type errorEnvelope struct {
	Errors []struct {
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// DecodeError turns a Primero error response into an application error; it
// is the peerhttp.Config.DecodeError of every Client. Code, Status, Peer and
// RetryAfter are left for peerhttp to fill from the status line.
//
// Primero's messages are fixed strings and its resource paths hold only
// UUIDs, but a detail can be an exception's text; none of it is copied.
// Message is one of our own fixed sentences, and 422 details become Problems
// whose Field is a field path (only when it looks like one) and whose Rule is
// a code: "/age" → {age, invalid}; detail "consent" → {consent,
// consent_missing}.
func DecodeError(status int, _ http.Header, body []byte) *refbridge.Error {
	e := &refbridge.Error{}
	var env errorEnvelope
	_ = json.Unmarshal(body, &env) // a body that is not the envelope (Devise's 401, a proxy page) still has a status
	switch status {
	case http.StatusUnauthorized:
		e.Message = "credentials or token refused"
	case http.StatusForbidden:
		e.Message = "not permitted for the API user"
	case http.StatusNotFound:
		e.Message = "not found"
	case http.StatusConflict:
		e.Message = "a record with this id already exists"
	case http.StatusTooManyRequests:
		e.Message = "rate limited"
	case http.StatusServiceUnavailable:
		e.Message = "unavailable"
	case http.StatusUnprocessableEntity:
		for _, item := range env.Errors {
			e.Problems = append(e.Problems, problemsOf(stringsOf(item.Message), stringsOf(item.Detail))...)
		}
		if len(e.Problems) == 0 {
			e.Problems = []refbridge.Problem{{Field: "data", Rule: RuleInvalid, Detail: "Primero refused the request body"}}
		}
		rules := make([]string, 0, len(e.Problems))
		for _, p := range e.Problems {
			rules = append(rules, p.Field+":"+p.Rule)
		}
		e.Message = "refused: " + strings.Join(rules, ", ")
	}
	return e
}

// problemsOf maps one envelope item to problems.
func problemsOf(messages, details []string) []refbridge.Problem {
	has := func(list []string, want string) bool {
		for _, s := range list {
			if s == want {
				return true
			}
		}
		return false
	}
	switch {
	case has(details, "consent") || has(messages, "transition.errors.consent"):
		return []refbridge.Problem{{Field: "consent", Rule: RuleConsentMissing,
			Detail: "the case lacks the consent a referral needs and consent was not overridden"}}
	case has(messages, "transition.errors.to_user_can_receive"):
		return []refbridge.Problem{{Field: "transitioned_to", Rule: RuleCannotReceive,
			Detail: "the recipient cannot receive referrals"}}
	}
	var out []refbridge.Problem
	for _, d := range details {
		out = append(out, refbridge.Problem{Field: fieldOf(d), Rule: RuleInvalid, Detail: "Primero refused the value of this field"})
	}
	if len(out) == 0 {
		out = append(out, refbridge.Problem{Field: "data", Rule: RuleInvalid, Detail: "Primero refused the request body"})
	}
	return out
}

// fieldOf turns a JSON pointer ("/services_section/0/unique_id") or a field
// name into a dotted path ("services_section.0.unique_id"). Anything that is
// not made of field-name characters becomes "data": a detail that is not a
// field name could be free text, and free text may carry personal data.
func fieldOf(detail string) string {
	p := strings.TrimPrefix(detail, "/")
	if p == "" || len(p) > 200 {
		return "data"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return "data"
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
				return "data"
			}
		}
	}
	return strings.ReplaceAll(p, "/", ".")
}

// stringsOf reads a JSON string or array of strings; anything else is empty.
func stringsOf(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}

// errorf builds an error the client raises itself. Peer stays empty for
// errors found before anything was sent (invalid arguments); peerErrorf is
// for what Primero's answer revealed.
func errorf(code refbridge.ErrorCode, format string, args ...any) *refbridge.Error {
	return &refbridge.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// peerErrorf builds an error about an answer Primero gave.
func peerErrorf(code refbridge.ErrorCode, format string, args ...any) *refbridge.Error {
	return &refbridge.Error{Code: code, Peer: peerName, Message: fmt.Sprintf(format, args...)}
}
