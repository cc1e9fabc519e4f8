// Package mapping holds the transforms of refbridge's four flows as pure
// functions: a peer's message and a country profile in, the other peer's
// message or every problem found out. Nothing here does I/O or reads the
// clock (now is a parameter), and nothing here knows a country: codes,
// agencies, texts, the ISP allow-list and the consent rule all come from the
// profile.
//
// Problems name a field (a JSON path in the input), a rule (profile.Rule*)
// and a plain sentence. A sentence may quote a workflow code (a service type,
// a decision code) but never a value about a person: not a name, date, sex,
// language, phone number or free text.
package mapping

import (
	"fmt"
	"strings"

	"refbridge"
)

// problems collects every problem of one mapping; mappings never stop at
// the first, so a sender can fix everything in one round.
type problems []refbridge.Problem

func (ps *problems) add(field, rule, detail string) {
	*ps = append(*ps, refbridge.Problem{Field: field, Rule: rule, Detail: detail})
}

func (ps *problems) addf(field, rule, format string, args ...any) {
	ps.add(field, rule, fmt.Sprintf(format, args...))
}

// Prefix returns ps with prefix joined in front of every field path, e.g.
// Prefix("interventions[2]", ps) for problems of one element of a batch.
func Prefix(prefix string, ps []refbridge.Problem) []refbridge.Problem {
	out := make([]refbridge.Problem, len(ps))
	for i, p := range ps {
		p.Field = joinPath(prefix, p.Field)
		out[i] = p
	}
	return out
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// blank reports whether s holds nothing but white space.
func blank(s string) bool { return strings.TrimSpace(s) == "" }

// nilIfBlank returns nil for a blank s, so that the field goes out as null.
func nilIfBlank(s string) *string {
	if blank(s) {
		return nil
	}
	return &s
}
