package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"refbridge"
	"refbridge/profile"
)

// Flow names, as the command line spells them (DESIGN.md, command-line
// contract).
const (
	FlowInterventionToCase    = "intervention-to-case"
	FlowCaseToDTPReferral     = "case-to-dtp-referral"
	FlowDTPDecisionToReferral = "dtp-decision-to-referral"
	FlowServiceDecisionToDTP  = "service-decision-to-dtp"
)

// Flows lists the flow names Run accepts.
func Flows() []string {
	return []string{FlowInterventionToCase, FlowCaseToDTPReferral, FlowDTPDecisionToReferral, FlowServiceDecisionToDTP}
}

// data is the {"data": …} envelope of every Primero body.
type data[T any] struct {
	Data T `json:"data"`
}

// Run decodes input as flow's input, maps it with p and encodes the result
// exactly as `refbridge map` prints it (DESIGN.md's table): the JSON output,
// or, for invalid input, no output and every problem. err is for a flow
// name Run does not know, or output that cannot be encoded.
func Run(p *profile.Profile, flow string, input []byte, now time.Time) (output []byte, problems []refbridge.Problem, err error) {
	var out any
	switch flow {
	case FlowInterventionToCase:
		var iv refbridge.Intervention
		if ps := decode(input, &iv); ps != nil {
			return nil, ps, nil
		}
		u, ps := InterventionToCase(p, FoldInterventions([]refbridge.Intervention{iv})[0], now)
		if ps != nil {
			return nil, ps, nil
		}
		out = data[refbridge.Case]{u.Case}
	case FlowCaseToDTPReferral:
		var in ReferralInput
		if ps := decode(input, &in); ps != nil {
			return nil, ps, nil
		}
		r, ps := CaseToDTPReferral(p, in)
		if ps != nil {
			return nil, ps, nil
		}
		out = r
	case FlowDTPDecisionToReferral:
		var d refbridge.ReferralDecision
		if ps := decode(input, &d); ps != nil {
			return nil, ps, nil
		}
		r, ps := DTPDecisionToReferral(p, d)
		if ps != nil {
			return nil, ps, nil
		}
		out = data[refbridge.Referral]{r.Patch}
	case FlowServiceDecisionToDTP:
		var in ServiceDecisionInput
		if ps := decode(input, &in); ps != nil {
			return nil, ps, nil
		}
		r, ps := ServiceDecisionToDTP(p, in)
		if ps != nil {
			return nil, ps, nil
		}
		out = r
	default:
		return nil, nil, refbridge.Errorf(refbridge.EInvalid, "unknown flow %q", flow)
	}
	b, err := encode(out)
	return b, nil, err
}

// encode writes v as indented JSON with a final newline, leaving <, > and &
// as they are so that people can read names and notes.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// EncodeProblems writes problems as the JSON array `refbridge map` prints
// for invalid input ([] for none).
func EncodeProblems(ps []refbridge.Problem) []byte {
	if ps == nil {
		ps = []refbridge.Problem{}
	}
	b, err := encode(ps)
	if err != nil {
		// Cannot happen: problems are plain strings, which always encode.
		panic("mapping: encoding problems: " + err.Error())
	}
	return b
}

// decode reads input into v; problems describe JSON that does not fit,
// without quoting any of it.
func decode(input []byte, v any) []refbridge.Problem {
	err := json.Unmarshal(input, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return []refbridge.Problem{{Field: "input", Rule: profile.RuleJSON,
			Detail: fmt.Sprintf("is not valid JSON (error at byte %d)", syn.Offset)}}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "input"
		}
		return []refbridge.Problem{{Field: field, Rule: profile.RuleJSON,
			Detail: fmt.Sprintf("is a JSON %s where the contract has a %s", typ.Value, jsonKind(typ.Type.Kind().String()))}}
	}
	return []refbridge.Problem{{Field: "input", Rule: profile.RuleJSON, Detail: "does not have the shape the contract gives for this flow"}}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number"
}
