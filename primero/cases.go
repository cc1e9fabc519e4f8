package primero

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"refbridge"
	"refbridge/egress"
	"refbridge/peerhttp"
)

// CaseQuery selects cases for Client.Cases. The zero value lists every case
// the API user can see, oldest first.
type CaseQuery struct {
	// Equal filters on exact field values, field name → value. Primero's ID
	// fields (case_id, unhcr_individual_no, unique_identifier, …) compare as
	// exact strings; on other fields "true"/"false" match booleans and digits
	// match integers, and an array field matches when it holds the value.
	// Values holding "," or ".." are refused: Primero would read them as a
	// list or a range. last_updated_at and associated_user_names have their
	// own fields below.
	Equal map[string]string
	// UpdatedFrom and UpdatedTo bound last_updated_at, both inclusive; either
	// may be zero. Primero compares whole seconds, so the window sent is
	// widened to whole seconds (From rounded down, To up): records are never
	// skipped at the edges, and callers dedupe by id. An upper bound alone is
	// sent as 1970-01-01T00:00:00Z..To because Primero silently drops "..To".
	UpdatedFrom, UpdatedTo time.Time
	// AssociatedUser keeps cases whose associated_user_names (owner plus
	// assigned users) include this user name.
	AssociatedUser string
	// Per is the page size: 0 means DefaultPer, at most MaxPer.
	Per int
	// OrderBy and Order sort the walk; default created_at asc, so that cases
	// created during a walk land on pages not yet read instead of shifting
	// the pages still to come.
	OrderBy string
	Order   string
	// ServerTime, when set, is called once with Primero's own clock — the
	// HTTP Date of the first page's answer — before any case is yielded.
	// It is not called when that answer has no valid Date. A poller uses it
	// to notice Primero's clock being set back or forward, which moves the
	// last_updated_at stamps its cursor relies on.
	ServerTime func(time.Time)
}

// Cases pages through the cases q selects, yielding each case once. It
// stops at the first error, which it yields with a zero Case; breaking out
// of the loop stops the walk.
//
// Primero silently ignores a filter on a field the API user may not read and
// returns unfiltered records. Every record is therefore checked against
// every filter asked; a record that does not match, or lacks the field, ends
// the walk with a forbidden *refbridge.Error naming the field (never the
// value) before any record of that page is yielded.
func (c *Client) Cases(ctx context.Context, q CaseQuery) iter.Seq2[refbridge.Case, error] {
	l, err := q.listing()
	if err != nil {
		return failed[refbridge.Case](err)
	}
	return l.all(ctx, c)
}

// reservedParam reports whether name is a query parameter that is not a
// field filter, or one CaseQuery sets through its own fields.
func reservedParam(name string) bool {
	switch name {
	case "page", "per", "per_page", "order_by", "order", "fields", "query", "id",
		"last_updated_at", "associated_user_names":
		return true
	}
	return false
}

// listing validates q and builds the paginated read with its checks.
func (q CaseQuery) listing() (listing[refbridge.Case], error) {
	const op = "list cases"
	per, err := checkPer(q.Per)
	if err != nil {
		return listing[refbridge.Case]{}, err
	}
	params := url.Values{}
	for field, value := range q.Equal {
		switch {
		case !isFieldName(field) || reservedParam(field):
			return listing[refbridge.Case]{}, errorf(refbridge.EInvalid, "%s: %q cannot be an equality filter", op, field)
		case value == "" || strings.Contains(value, ",") || strings.Contains(value, ".."):
			// The value is not quoted: it may be personal (a registration number).
			return listing[refbridge.Case]{}, errorf(refbridge.EInvalid, "%s: filter %s needs a value without \",\" or \"..\"", op, field)
		}
		params.Set(field, value)
	}
	from, to, err := q.window()
	if err != nil {
		return listing[refbridge.Case]{}, err
	}
	window := func(from time.Time) string {
		v := from.Format(time.RFC3339) + ".."
		if !to.IsZero() {
			v += to.Format(time.RFC3339)
		}
		return v
	}
	if !from.IsZero() || !to.IsZero() {
		params.Set("last_updated_at", window(from))
	}
	if q.AssociatedUser != "" {
		if strings.Contains(q.AssociatedUser, ",") {
			return listing[refbridge.Case]{}, errorf(refbridge.EInvalid, "%s: associated user must be one user name", op)
		}
		params.Set("associated_user_names", q.AssociatedUser)
	}
	orderBy, order := q.OrderBy, q.Order
	if orderBy == "" {
		orderBy = "created_at"
	}
	if order == "" {
		order = "asc"
	}
	if !isFieldName(orderBy) || (order != "asc" && order != "desc") {
		return listing[refbridge.Case]{}, errorf(refbridge.EInvalid, "%s: order must be a field name and asc or desc", op)
	}
	params.Set("order_by", orderBy)
	params.Set("order", order)

	l := listing[refbridge.Case]{
		op:     op,
		path:   "/api/v2/cases",
		params: params,
		per:    per,
		// Each version once: a case updated during the walk comes again, new.
		key: func(c *refbridge.Case) string { return c.ID + "@" + c.LastUpdatedAt.UTC().Format(time.RFC3339Nano) },
		verify: func(body []byte, cases []refbridge.Case) error {
			return q.verify(body, cases, from, to)
		},
		date: q.ServerTime,
	}
	if orderBy == "last_updated_at" && order == "asc" {
		// A walk by last_updated_at goes on from the last second it read
		// (Primero compares whole seconds; that second is read again and
		// its cases deduplicated), so that cases updated during the walk,
		// which move to its end, shift nothing it has still to read.
		at := from
		l.advance = func(last *refbridge.Case, params url.Values) bool {
			s := last.LastUpdatedAt.UTC().Truncate(time.Second)
			if !s.After(at) {
				return false // a page within one second: page on in it
			}
			at = s
			params.Set("last_updated_at", window(at))
			return true
		}
	}
	return l, nil
}

// window returns the last_updated_at bounds as sent: UTC, whole seconds,
// widened outward, with the 1970 lower bound when only To is given.
func (q CaseQuery) window() (from, to time.Time, err error) {
	if !q.UpdatedFrom.IsZero() && !q.UpdatedTo.IsZero() && q.UpdatedTo.Before(q.UpdatedFrom) {
		return from, to, errorf(refbridge.EInvalid, "list cases: UpdatedTo is before UpdatedFrom")
	}
	if !q.UpdatedFrom.IsZero() {
		from = q.UpdatedFrom.UTC().Truncate(time.Second)
	}
	if !q.UpdatedTo.IsZero() {
		to = q.UpdatedTo.UTC()
		if t := to.Truncate(time.Second); !t.Equal(to) {
			to = t.Add(time.Second)
		}
		if from.IsZero() {
			from = time.Unix(0, 0).UTC()
		}
	}
	return from, to, nil
}

// verify checks every case of a page against every filter of q, with the
// last_updated_at window as it was sent.
func (q CaseQuery) verify(body []byte, cases []refbridge.Case, from, to time.Time) error {
	ignored := func(field string, c *refbridge.Case) error {
		return peerErrorf(refbridge.EForbidden,
			"list cases: Primero ignored the filter on %s (the API user may not read that field): case %s does not match it", field, c.ID)
	}
	for i := range cases {
		c := &cases[i]
		// Compared at whole seconds, the precision of the bounds sent: a
		// record at 10:15:00.5 is within "..10:15:00" for a server that
		// compares seconds, and an ignored filter is off by far more.
		lu := c.LastUpdatedAt.Truncate(time.Second)
		if !from.IsZero() && (lu.IsZero() || lu.Before(from) || (!to.IsZero() && lu.After(to))) {
			return ignored("last_updated_at", c)
		}
		if q.AssociatedUser != "" && !slices.Contains(c.AssociatedUserNames, q.AssociatedUser) {
			return ignored("associated_user_names", c)
		}
	}
	if len(q.Equal) == 0 {
		return nil
	}
	raws, err := rawItems(body)
	if err != nil || len(raws) != len(cases) {
		return &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Message: "list cases: unreadable page", Err: err}
	}
	for i, raw := range raws {
		for field, want := range q.Equal {
			if !valueMatches(raw[field], want) {
				return ignored(field, &cases[i])
			}
		}
	}
	return nil
}

// valueMatches reports whether a record's JSON value satisfies an equality
// filter as Primero applies it: strings exactly, booleans and integers by
// their text, arrays when any element matches. An absent or null value never
// matches.
func valueMatches(raw json.RawMessage, want string) bool {
	if len(raw) == 0 {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return false
	}
	return scalarMatches(v, want)
}

func scalarMatches(v any, want string) bool {
	switch v := v.(type) {
	case string:
		return v == want
	case bool:
		return (want == "true" && v) || (want == "false" && !v)
	case json.Number:
		return v.String() == want
	case []any:
		for _, e := range v {
			if _, nested := e.([]any); !nested && scalarMatches(e, want) {
				return true
			}
		}
	}
	return false
}

// GetCase returns the case with the database id (the UUID in URLs, not
// case_id). An unknown id is not_found; a case outside the API user's scope
// is forbidden.
func (c *Client) GetCase(ctx context.Context, id string) (refbridge.Case, error) {
	const op = "get case"
	var out struct {
		Data refbridge.Case `json:"data"`
	}
	if !isUUID(id) {
		return out.Data, errorf(refbridge.EInvalid, "%s: id must be a UUID", op)
	}
	err := c.get(ctx, op, "/api/v2/cases/"+id, nil, &out)
	return out.Data, err
}

// CaseExistsError is the cause of the conflict CreateCase returns when
// Primero already holds a case with the id it sent. The id is chosen by
// the client, so when it came from this exchange (a retried attempt, or an
// attempt of an earlier run recorded before it was sent) the conflict means
// the earlier attempt landed: treat it as success.
//
//	id, err := c.CreateCase(ctx, cs)
//	var exists *primero.CaseExistsError
//	if errors.As(err, &exists) { err = nil } // created by our earlier attempt
type CaseExistsError struct {
	// ID is the case's database id.
	ID string
}

// Error implements the error interface.
func (e *CaseExistsError) Error() string { return "case " + e.ID + " already exists" }

// CreateCase creates the case body and returns its database id. id is the
// database id to create it under (a lowercase UUID); when it is empty the
// body's own id is used, and when that is empty too a random (v4) UUID is
// chosen. The id makes the create idempotent, so it is retried in-line like
// a read. If a case with that id exists, CreateCase returns the id and a
// conflict *refbridge.Error wrapping *CaseExistsError. Service unique_ids,
// when set, must be lowercase UUIDs.
//
// The body is the EgressFilter's output; the id is refbridge's bookkeeping,
// not the child's data, so it travels beside it rather than through the
// allow-list. A Message that did not pass the filter is refused unsent.
//
// Fields the API user may not write are dropped by Primero without notice.
func (c *Client) CreateCase(ctx context.Context, id string, body egress.Message[refbridge.Case]) (string, error) {
	const op = "create case"
	if err := body.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	cs := body.Value()
	switch {
	case id == "":
		id = cs.ID
	case cs.ID != "" && cs.ID != id:
		return "", errorf(refbridge.EInvalid, "%s: body carries id %s for case %s", op, cs.ID, id)
	}
	if id == "" {
		generated, err := newUUID()
		if err != nil {
			return "", &refbridge.Error{Code: refbridge.EInternal, Message: op + ": generate id", Err: err}
		}
		id = generated
	}
	cs.ID = id
	if !isLowerUUID(cs.ID) {
		return "", errorf(refbridge.EInvalid, "%s: id must be a lowercase UUID", op)
	}
	if err := checkServiceIDs(op, cs.Services, false); err != nil {
		return cs.ID, err
	}
	var out struct {
		Data refbridge.Case `json:"data"`
	}
	_, err := c.send(ctx, op, http.MethodPost, "/api/v2/cases", cs, peerhttp.RetryIdempotent, &out)
	var e *refbridge.Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusConflict:
		return cs.ID, &refbridge.Error{Code: refbridge.EConflict, Peer: peerName, Status: e.Status,
			Message: op + ": case " + cs.ID + " already exists (an earlier attempt landed)", Err: &CaseExistsError{ID: cs.ID}}
	case err != nil:
		return cs.ID, err
	case out.Data.ID != "" && out.Data.ID != cs.ID:
		// 204 is the answer to a create with an id; a 200 naming another id
		// means Primero did not keep ours and a retry would duplicate.
		return out.Data.ID, peerErrorf(refbridge.EInternal, "%s: Primero assigned id %s instead of %s", op, out.Data.ID, cs.ID)
	}
	return cs.ID, nil
}

// PatchCase changes the fields set in patch on the case with database id
// and returns what Primero echoes (id, enabled, the changed fields,
// last_updated_at). Fields not set stay as they are. patch is the
// EgressFilter's output; a Message that did not pass it is refused unsent.
//
// Subform items are merged by unique_id: send only the service items that
// change, each with its unique_id (a lowercase UUID, checked here), and only
// their changed fields; items not sent are kept, and Destroy removes one.
// Every item must carry its unique_id because PATCH is retried in-line: an
// item without one would be appended again by each attempt.
func (c *Client) PatchCase(ctx context.Context, id string, patch egress.Message[refbridge.Case]) (refbridge.Case, error) {
	const op = "patch case"
	var out struct {
		Data refbridge.Case `json:"data"`
	}
	if err := patch.Err(); err != nil {
		return out.Data, fmt.Errorf("%s: %w", op, err)
	}
	if !isUUID(id) {
		return out.Data, errorf(refbridge.EInvalid, "%s: id must be a UUID", op)
	}
	body := patch.Value()
	if body.ID != "" && body.ID != id {
		return out.Data, errorf(refbridge.EInvalid, "%s: patch carries id %s for case %s", op, body.ID, id)
	}
	body.ID = "" // the URL names the case
	if err := checkServiceIDs(op, body.Services, true); err != nil {
		return out.Data, err
	}
	_, err := c.send(ctx, op, http.MethodPatch, "/api/v2/cases/"+id, body, peerhttp.RetryIdempotent, &out)
	return out.Data, err
}

// MarkSynced writes the bridge's sync status back to a case (mark_synced,
// mark_synced_url, mark_synced_status), which Primero shows the case worker
// and records in its audit log. The API user needs the sync_external
// permission; without it Primero drops the fields silently. st is the
// EgressFilter's output; a Message that did not pass it is refused unsent.
func (c *Client) MarkSynced(ctx context.Context, caseID string, st egress.Message[refbridge.SyncStatus]) error {
	const op = "mark synced"
	if err := st.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !isUUID(caseID) {
		return errorf(refbridge.EInvalid, "%s: id must be a UUID", op)
	}
	// The sync status encodes as the case fields it sets: the message is
	// the PATCH body as it is.
	var out struct {
		Data refbridge.Case `json:"data"`
	}
	_, err := c.send(ctx, op, http.MethodPatch, "/api/v2/cases/"+caseID, st, peerhttp.RetryIdempotent, &out)
	return err
}

// checkServiceIDs requires lowercase UUID unique_ids on service items,
// which Primero needs to merge them (else 422); required says whether an
// item may omit it.
func checkServiceIDs(op string, services []refbridge.Service, required bool) error {
	for i, s := range services {
		switch {
		case s.UniqueID == "" && !required:
		case s.UniqueID == "":
			return &refbridge.Error{Code: refbridge.EInvalid, Message: op + ": every service item needs its unique_id",
				Problems: []refbridge.Problem{{Field: servicePath(i), Rule: "required", Detail: "a patched service item needs its unique_id"}}}
		case !isLowerUUID(s.UniqueID):
			return &refbridge.Error{Code: refbridge.EInvalid, Message: op + ": service unique_id must be a lowercase UUID",
				Problems: []refbridge.Problem{{Field: servicePath(i), Rule: "invalid", Detail: "must be a lowercase UUID"}}}
		}
	}
	return nil
}

func servicePath(i int) string {
	return "services_section." + strconv.Itoa(i) + ".unique_id"
}
