package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"refbridge"
)

// batchFlow describes one inbound DTP flow: how to decode, key, fold and
// store its items.
type batchFlow[T any] struct {
	flow        refbridge.Flow
	requestType string
	keyField    string // JSON name of the idempotency key in an item
	schema      *schema
	key         func(*T) string
	// fold merges rows of one item and returns, per resulting item, its
	// problems; rows it keeps apart are different content under one key.
	fold func([]T) ([]T, [][]refbridge.Problem)
	// single: the stored payload is the one row itself, not an array of rows.
	single bool
	// canonical encodes a decoded row canonically (see canonicalRow).
	canonical func(*T) ([]byte, error)
}

func interventionFlow(v Validator) *batchFlow[refbridge.Intervention] {
	return &batchFlow[refbridge.Intervention]{
		flow:        refbridge.FlowIntervention,
		requestType: refbridge.RequestTypeOutgoingReferral,
		keyField:    "progres_interventionnumber",
		schema:      batchSchema(reflect.TypeFor[refbridge.InterventionBatch]()),
		key:         func(iv *refbridge.Intervention) string { return iv.InterventionNumber },
		fold:        v.Interventions,
		canonical:   canonicalRow[refbridge.Intervention](),
	}
}

func decisionFlow(v Validator) *batchFlow[refbridge.ReferralDecision] {
	return &batchFlow[refbridge.ReferralDecision]{
		flow:        refbridge.FlowReferralDecision,
		requestType: refbridge.RequestTypeIncomingReferralDecision,
		keyField:    "progres_orgreferralid",
		schema:      batchSchema(reflect.TypeFor[refbridge.DecisionBatch]()),
		key:         func(d *refbridge.ReferralDecision) string { return d.OrgReferralID },
		// Decisions never fold: two different decisions under one key are a conflict.
		fold: func(ds []refbridge.ReferralDecision) ([]refbridge.ReferralDecision, [][]refbridge.Problem) {
			ps := make([][]refbridge.Problem, len(ds))
			for i := range ds {
				ps[i] = v.Decision(ds[i])
			}
			return ds, ps
		},
		single:    true,
		canonical: canonicalRow[refbridge.ReferralDecision](),
	}
}

// counts are the per-outcome totals of a batch answer; they add up to Received.
type counts struct {
	Received  int `json:"received"`
	Accepted  int `json:"accepted"`
	Duplicate int `json:"duplicate"`
	Updated   int `json:"updated"`
	Rejected  int `json:"rejected"`
	stored    int // Inbound items handed to the Inbox (for the log)
}

// batchResponse is the 200 answer to a DTP batch.
type batchResponse struct {
	RequestType string `json:"request_type"`
	counts
	Results []itemResult `json:"results"`
}

// itemResult is the answer for one element of the request's interventions array.
type itemResult struct {
	Index      int                     `json:"index"`
	Key        string                  `json:"key,omitempty"`
	Outcome    refbridge.IntakeOutcome `json:"outcome"`
	ExchangeID string                  `json:"exchange_id,omitempty"`
	// FoldedInto is the index of the item this one was folded into (a
	// further join row of the same intervention, or an exact repeat).
	FoldedInto *int                `json:"folded_into,omitempty"`
	Problems   []refbridge.Problem `json:"problems,omitempty"`
}

func (s *Server) handleInterventions(w http.ResponseWriter, r *http.Request, st *reqState, body []byte) {
	s.handleBatch(w, r, st, body, refbridge.RequestTypeOutgoingReferral)
}

func (s *Server) handleDecisions(w http.ResponseWriter, r *http.Request, st *reqState, body []byte) {
	s.handleBatch(w, r, st, body, refbridge.RequestTypeIncomingReferralDecision)
}

// handleInbox takes either batch at one URL, routed by request_type, as the
// reference's OpenFn inbox did.
func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request, st *reqState, body []byte) {
	s.handleBatch(w, r, st, body, "")
}

// envelope is a DTP batch with its items still raw, so that each item is
// decoded, and refused, on its own.
type envelope struct {
	QueryParams   json.RawMessage    `json:"__query_params"`
	Interventions *[]json.RawMessage `json:"interventions"`
	RequestType   json.RawMessage    `json:"request_type"`
}

// handleBatch processes a DTP batch for the flow named by want ("" = the
// body's request_type decides).
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request, st *reqState, body []byte, want string) {
	var env envelope
	var te *json.UnmarshalTypeError
	switch err := json.Unmarshal(body, &env); {
	case errors.As(err, &te) && te.Field == "interventions":
		s.fail(w, st, invalidBody("interventions", "must be a list of items"))
		return
	case err != nil || string(bytes.TrimSpace(body)) == "null":
		s.fail(w, st, invalidBody("$", `the body must be a JSON object {"interventions":[…],"request_type":…}`))
		return
	}
	rt, err := requestType(env.RequestType, want)
	if err != nil {
		s.fail(w, st, err)
		return
	}
	st.requestType = rt
	var resp *batchResponse
	if rt == refbridge.RequestTypeOutgoingReferral {
		resp, err = processBatch(r.Context(), s, s.f1, body, env.Interventions)
	} else {
		resp, err = processBatch(r.Context(), s, s.f2d, body, env.Interventions)
	}
	if err != nil {
		s.fail(w, st, err)
		return
	}
	st.counts = &resp.counts
	writeJSON(w, http.StatusOK, resp)
}

// requestType checks the body's request_type against the route: a
// dedicated route accepts its own type or none (one DTP sample has none);
// the inbox needs one of the two inbound types.
func requestType(raw json.RawMessage, want string) (string, *refbridge.Error) {
	var got string
	if len(raw) > 0 && json.Unmarshal(raw, &got) != nil {
		return "", invalidBody("request_type", "must be a string")
	}
	got = strings.TrimSpace(got)
	allowed := refbridge.RequestTypeOutgoingReferral + " or " + refbridge.RequestTypeIncomingReferralDecision
	switch {
	case want != "" && (got == "" || got == want):
		return want, nil
	case want != "":
		return "", &refbridge.Error{Code: refbridge.EInvalid, Message: "request_type does not fit this route",
			Problems: []refbridge.Problem{{Field: "request_type", Rule: RuleMismatch,
				Detail: "this route takes " + want + ", the body says " + displayCode(got, dtpRequestTypes()...) + "; post it to " + RouteInbox + " or the flow's own route"}}}
	case got == "":
		return "", &refbridge.Error{Code: refbridge.EInvalid, Message: "request_type is required on " + RouteInbox,
			Problems: []refbridge.Problem{{Field: "request_type", Rule: RuleRequired,
				Detail: "is missing; it must be " + allowed}}}
	case got == refbridge.RequestTypeOutgoingReferral || got == refbridge.RequestTypeIncomingReferralDecision:
		return got, nil
	}
	return "", &refbridge.Error{Code: refbridge.EInvalid, Message: "request_type is not one this inbox handles",
		Problems: []refbridge.Problem{{Field: "request_type", Rule: RuleUnknownCode,
			Detail: displayCode(got, dtpRequestTypes()...) + " is not handled; it must be " + allowed}}}
}

// dtpRequestTypes are every request_type DTP and the bridge use (contract
// §5.7), the ones a detail may name.
func dtpRequestTypes() []string {
	return []string{refbridge.RequestTypeOutgoingReferral, refbridge.RequestTypeIncomingReferralDecision,
		refbridge.RequestTypeIncomingReferral, refbridge.RequestTypeDecisionOutgoingReferral, refbridge.RequestTypeFeedback}
}

// row is one element of the batch's interventions array on its way through.
type row[T any] struct {
	index    int
	key      string
	val      T
	clean    bool   // decoded strictly without problems
	canon    []byte // canonical JSON (of val when clean, else of the raw item)
	problems []refbridge.Problem
	keyless  bool // no usable key: rejected in the answer only
	group    *group[T]
	folded   bool // folded into group.rows[0]
	stray    bool // same key as an earlier item, other content: rejected, not stored
}

// group is every row of a batch under one key; its first row leads.
type group[T any] struct {
	rows     []*row[T]
	members  []*row[T] // distinct rows stored, lead first
	problems []refbridge.Problem
	inbound  int
}

// processBatch decodes, keys, folds and validates each item, stores the
// batch in one Inbox call, and builds the per-item answer. A problem with
// one item never stops the others.
func processBatch[T any](ctx context.Context, s *Server, f *batchFlow[T], body []byte, list *[]json.RawMessage) (*batchResponse, *refbridge.Error) {
	issues, tooDeep := scan(body, f.schema)
	if tooDeep {
		return nil, invalidBody("$", "the body nests deeper than "+itoa(maxDepth)+" levels")
	}
	itemIssues := map[int][]refbridge.Problem{}
	var envelope []refbridge.Problem
	for _, is := range issues {
		p := refbridge.Problem{Field: is.field, Rule: is.rule, Detail: is.detail}
		if is.item < 0 {
			envelope = append(envelope, p)
		} else {
			itemIssues[is.item] = append(itemIssues[is.item], p)
		}
	}
	if len(envelope) > 0 {
		return nil, &refbridge.Error{Code: refbridge.EInvalid, Message: "the batch envelope is not as the contract gives it", Problems: envelope}
	}
	if list == nil {
		return nil, &refbridge.Error{Code: refbridge.EInvalid, Message: "the batch has no interventions",
			Problems: []refbridge.Problem{{Field: "interventions", Rule: RuleRequired, Detail: "is missing; it must be a list of items"}}}
	}
	items := *list

	rows := make([]row[T], len(items))
	groups := []*group[T]{}
	byKey := map[string]*group[T]{}
	for i, raw := range items {
		r := &rows[i]
		r.index = i
		r.problems = itemIssues[i]
		v, ps := decodeItem[T](raw)
		for _, p := range ps {
			if p.Rule == RuleUnknownField && len(r.problems) > 0 {
				continue // scan already named it, with its full path
			}
			r.problems = append(r.problems, p)
		}
		r.clean = len(r.problems) == 0
		var key string
		var err error
		if r.clean {
			r.val = v
			key = strings.TrimSpace(f.key(&v))
			r.canon, err = f.canonical(&v)
		} else {
			key = lenientKey(raw, f.keyField)
			r.canon, err = canonicalJSON(raw)
		}
		if err != nil {
			return nil, refbridge.Errorf(refbridge.EInternal, "item %d could not be encoded", i)
		}
		switch {
		case key == "":
			r.keyless = true
			r.problems = append(r.problems, refbridge.Problem{Field: f.keyField, Rule: RuleRequired,
				Detail: "is the item's key and is missing or blank; the item cannot be stored or acknowledged"})
		case !validKey(key):
			r.keyless = true
			r.problems = append(r.problems, refbridge.Problem{Field: f.keyField, Rule: RuleFormat,
				Detail: "must be 1 to " + itoa(maxKeyLen) + " printable ASCII characters; the item cannot be stored"})
		default:
			r.key = key
			g := byKey[key]
			if g == nil {
				g = &group[T]{}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.rows = append(g.rows, r)
			r.group = g
		}
	}

	inbounds := make([]refbridge.Inbound, 0, len(groups))
	for _, g := range groups {
		if err := f.foldGroup(g); err != nil {
			return nil, err
		}
		canons := make([][]byte, len(g.members))
		for i, m := range g.members {
			canons[i] = m.canon
		}
		in := refbridge.Inbound{Flow: f.flow, Key: g.rows[0].key, ContentHash: contentHash(canons),
			Payload: jsonArray(canons), State: refbridge.StateReceived}
		if f.single {
			in.Payload = canons[0]
		}
		if len(g.problems) > 0 {
			in.State, in.Problems = refbridge.StateRejected, g.problems
		}
		g.inbound = len(inbounds)
		inbounds = append(inbounds, in)
	}

	var intakes []refbridge.Intake
	if len(inbounds) > 0 {
		var err error
		intakes, err = s.inbox.Receive(ctx, inbounds)
		if err != nil {
			// The cause's text may quote stored data; only its code is logged.
			s.log.LogAttrs(ctx, slog.LevelError, "inbox receive failed", slog.String("request_id", requestIDFrom(ctx)),
				slog.Int("items", len(inbounds)), slog.String("error_code", string(refbridge.ErrorCodeOf(err))))
			return nil, dependencyError(err, "the inbox")
		}
		if len(intakes) != len(inbounds) {
			return nil, refbridge.Errorf(refbridge.EInternal, "the inbox answered %d results for %d items; nothing was acknowledged", len(intakes), len(inbounds))
		}
		for _, in := range intakes {
			switch in.Outcome {
			case refbridge.IntakeAccepted, refbridge.IntakeDuplicate, refbridge.IntakeUpdated, refbridge.IntakeRejected:
			default:
				return nil, refbridge.Errorf(refbridge.EInternal, "the inbox answered an unknown outcome; nothing was acknowledged")
			}
		}
	}
	return answer(f, rows, intakes, len(inbounds)), nil
}

// foldGroup decides which rows of g are stored (members), folded into the
// lead, or stray, and the stored item's problems.
func (f *batchFlow[T]) foldGroup(g *group[T]) *refbridge.Error {
	lead := g.rows[0]
	g.members = []*row[T]{lead}
	if !lead.clean {
		// A refused item is stored as rejected, so DTP gets the failure
		// callback; only an exact repeat can fold into it.
		g.problems = lead.problems
		for _, r := range g.rows[1:] {
			r.folded = bytes.Equal(r.canon, lead.canon)
			r.stray = !r.folded
		}
		return nil
	}
	// Exact repeats fold without asking the validator.
	var distinct []*row[T]
	sameAs := map[*row[T]]*row[T]{}
	seen := map[string]*row[T]{}
	for _, r := range g.rows {
		switch first := seen[string(r.canon)]; {
		case !r.clean:
			r.stray = true
		case first != nil:
			sameAs[r] = first
		default:
			seen[string(r.canon)] = r
			distinct = append(distinct, r)
		}
	}
	probs, n, err := f.validate(distinct)
	if err != nil {
		return err
	}
	if n == 1 {
		g.members = distinct
	} else {
		// Some rows do not fold: find out which, keeping the earliest.
		if probs, _, err = f.validate(g.members); err != nil {
			return err
		}
		for _, r := range distinct[1:] {
			try := append(g.members[:len(g.members):len(g.members)], r)
			p, n, err := f.validate(try)
			if err != nil {
				return err
			}
			if n == 1 {
				g.members, probs = try, p
			} else {
				r.stray = true
			}
		}
	}
	g.problems = probs
	for _, r := range g.rows[1:] {
		if first, ok := sameAs[r]; ok {
			r.stray = first.stray
		}
		r.folded = !r.stray
	}
	return nil
}

// validate folds rows and returns the first resulting item's problems and
// how many items the rows fold into; a Validator answer out of contract is
// an internal error (DTP will send again).
func (f *batchFlow[T]) validate(rows []*row[T]) ([]refbridge.Problem, int, *refbridge.Error) {
	vals := make([]T, len(rows))
	for i, r := range rows {
		vals[i] = r.val
	}
	out, probs := f.fold(vals)
	if len(out) == 0 || len(out) > len(vals) || len(probs) != len(out) {
		return nil, 0, refbridge.Errorf(refbridge.EInternal, "the validator answered %d items and %d problem lists for %d rows", len(out), len(probs), len(vals))
	}
	return probs[0], len(out), nil
}

// answer builds the per-item results, in request order.
func answer[T any](f *batchFlow[T], rows []row[T], intakes []refbridge.Intake, stored int) *batchResponse {
	resp := &batchResponse{RequestType: f.requestType, Results: make([]itemResult, len(rows))}
	resp.Received, resp.stored = len(rows), stored
	for i := range rows {
		r := &rows[i]
		res := itemResult{Index: i, Key: r.key, Outcome: refbridge.IntakeRejected}
		switch {
		case r.keyless:
			res.Problems = r.problems
		case r.stray:
			lead := r.group.rows[0]
			res.Problems = append(r.problems, refbridge.Problem{Field: f.keyField, Rule: RuleDuplicateInBatch,
				Detail: "item " + itoa(lead.index) + " has the same key with other content; only that item is processed. Send a corrected item in a new request"})
		default:
			g := r.group
			in := intakes[g.inbound]
			res.ExchangeID = in.ExchangeID
			if r.folded {
				res.FoldedInto = &g.rows[0].index
			}
			switch {
			case len(g.problems) > 0:
				res.Problems = g.problems
			case in.Outcome == refbridge.IntakeRejected:
				res.Problems = []refbridge.Problem{{Field: "$", Rule: RuleRefused,
					Detail: "the inbox refused the item; the operator console shows why under exchange " + displayKey(in.ExchangeID)}}
			default:
				res.Outcome = in.Outcome
			}
		}
		res.Problems = prefixProblems(i, res.Problems)
		switch res.Outcome {
		case refbridge.IntakeAccepted:
			resp.Accepted++
		case refbridge.IntakeDuplicate:
			resp.Duplicate++
		case refbridge.IntakeUpdated:
			resp.Updated++
		default:
			resp.Rejected++
		}
		resp.Results[i] = res
	}
	return resp
}

// prefixProblems turns item-relative paths into paths in the request body.
func prefixProblems(i int, ps []refbridge.Problem) []refbridge.Problem {
	if len(ps) == 0 {
		return nil
	}
	out := make([]refbridge.Problem, len(ps))
	base := "interventions[" + itoa(i) + "]"
	for j, p := range ps {
		switch {
		case p.Field == "" || p.Field == "$":
			p.Field = base
		case strings.HasPrefix(p.Field, "["):
			p.Field = base + p.Field
		default:
			p.Field = base + "." + p.Field
		}
		out[j] = p
	}
	return out
}
