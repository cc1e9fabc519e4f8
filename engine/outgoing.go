package engine

import (
	"encoding/json"
	"slices"
)

// outgoing is a mapped peer message resting in an exchange between steps,
// with the Primero agency whose ISP allow-list applies to it. The message
// is filtered again when it is sent (egress.Filter), so that a profile
// changed meanwhile applies to what has not left yet; the agency is all
// that is kept beside it for that — a code, no personal data.
type outgoing[T any] struct {
	Message T      `json:"message"`
	Agency  string `json:"agency,omitempty"`
}

// UnmarshalJSON also reads a payload stored before the agency travelled
// with the message: the bare message, which the mapping had restricted
// for its agency; it is sent under the general list, which can only keep
// what is already there.
func (o *outgoing[T]) UnmarshalJSON(b []byte) error {
	var w struct {
		Message json.RawMessage `json:"message"`
		Agency  string          `json:"agency"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Message == nil {
		*o = outgoing[T]{}
		return json.Unmarshal(b, &o.Message)
	}
	o.Agency = w.Agency
	return json.Unmarshal(w.Message, &o.Message)
}

// unionFields merges the field names of the bodies one step sent, sorted,
// for the audit.
func unionFields(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
