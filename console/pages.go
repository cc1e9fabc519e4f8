package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"refbridge"
	"refbridge/store"
)

// pageSize is how many rows a list page shows: small enough for a slow
// connection, and List's COUNT tells how many pages there are.
const pageSize = 50

// operatorReasons are the codes a focal point chooses from to retry or
// discard a dead exchange. Codes, not free text: they go into the audit
// trail, which keeps no personal value.
func operatorReasons() []string {
	return []string{"peer_fixed", "profile_fixed", "data_corrected", "duplicate", "not_needed", "test_message"}
}

// flowRow is one line of the overview's table.
type flowRow struct {
	Flow                                    refbridge.Flow
	Received, Delivered, Held, Failed, Dead int
}

func summarize(counts map[refbridge.Flow]map[refbridge.ExchangeState]int) []flowRow {
	var rows []flowRow
	for _, f := range refbridge.Flows() {
		m := counts[f]
		r := flowRow{Flow: f, Delivered: m[refbridge.StateDelivered] + m[refbridge.StateDone], Held: m[refbridge.StateHeld],
			Failed: m[refbridge.StateFailed] + m[refbridge.StateRejected], Dead: m[refbridge.StateDead]}
		for _, n := range m {
			r.Received += n
		}
		rows = append(rows, r)
	}
	return rows
}

type overviewData struct {
	Day, Week  []flowRow
	Circuits   map[string]string
	Peers      []string
	LastPoll   time.Time
	HasPoll    bool
	Queue      map[string]int
	QueueKeys  []string
	QueueTotal int
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := c.now()
	day, err := c.store.Counts(ctx, now.Add(-24*time.Hour))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	week, err := c.store.Counts(ctx, now.Add(-7*24*time.Hour))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := overviewData{Day: summarize(day), Week: summarize(week)}
	if c.cfg.Circuits != nil {
		d.Circuits = c.cfg.Circuits()
		d.Peers = sortedKeys(d.Circuits)
	}
	if c.cfg.LastPoll != nil {
		if d.LastPoll, err = c.cfg.LastPoll(ctx); err != nil {
			c.fail(w, r, err)
			return
		}
		d.HasPoll = true
	}
	if c.cfg.QueueDepth != nil {
		if d.Queue, err = c.cfg.QueueDepth(ctx); err != nil {
			c.fail(w, r, err)
			return
		}
		d.QueueKeys = sortedKeys(d.Queue)
		for _, n := range d.Queue {
			d.QueueTotal += n
		}
	}
	c.render(w, r, http.StatusOK, "overview", pageData{Title: "overview", Nav: "overview", Data: d})
}

func (c *Console) chart(w http.ResponseWriter, r *http.Request) {
	hours, err := c.store.Activity(r.Context(), c.now().Add(-23*time.Hour))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Write(renderChart(hours, c.localeFor(viewerOf(r.Context()))))
}

// listData is an exchange list page.
type listData struct {
	Filter     store.Filter
	Form       url.Values
	Exchanges  []refbridge.Exchange
	Total      int
	Page, Last int
	// Path is the list's own route, for the pager's links.
	Path string
	// Actions shows the retry/discard forms (the dead list).
	Actions bool
	Fixed   bool // the state filter is fixed by the page (held, dead)
}

// filterFrom reads a list's filter from the query string; bad values are
// ignored rather than refused (the form is all the UI has).
func filterFrom(q url.Values) (store.Filter, int) {
	f := store.Filter{Limit: pageSize}
	if fl := refbridge.Flow(q.Get("flow")); slices.Contains(refbridge.Flows(), fl) {
		f.Flow = fl
	}
	f.State = refbridge.ExchangeState(q.Get("state"))
	f.Reason = strings.TrimSpace(q.Get("reason"))
	f.KeyPrefix = strings.TrimSpace(q.Get("key"))
	if t, err := time.Parse("2006-01-02", q.Get("since")); err == nil {
		f.Since = t
	}
	if t, err := time.Parse("2006-01-02", q.Get("until")); err == nil {
		f.Until = t.Add(24 * time.Hour) // the day named is included
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	f.Offset = (page - 1) * pageSize
	return f, page
}

func (c *Console) list(w http.ResponseWriter, r *http.Request, title, path string, state refbridge.ExchangeState, actions bool) {
	q := r.URL.Query()
	f, page := filterFrom(q)
	if state != "" {
		f.State = state
	}
	exs, total, err := c.store.List(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	last := max((total+pageSize-1)/pageSize, 1)
	c.render(w, r, http.StatusOK, "exchanges", pageData{Title: title, Nav: title, Flash: q.Get("done"), Data: listData{
		Filter: f, Form: q, Exchanges: exs, Total: total, Page: page, Last: last, Path: path, Actions: actions, Fixed: state != "",
	}})
}

func (c *Console) exchanges(w http.ResponseWriter, r *http.Request) {
	c.list(w, r, "exchanges", Prefix+"exchanges", "", false)
}

func (c *Console) held(w http.ResponseWriter, r *http.Request) {
	c.list(w, r, "held", Prefix+"held", refbridge.StateHeld, false)
}

func (c *Console) dead(w http.ResponseWriter, r *http.Request) {
	c.list(w, r, "dead", Prefix+"dead", refbridge.StateDead, true)
}

type exchangeData struct {
	Ex     refbridge.Exchange
	Events []refbridge.AuditEvent
	// Shared lists the field names each share sent, by peer.
	Shared []sharedFields
	// HasPayload says personal details can still be shown.
	HasPayload bool
}

type sharedFields struct {
	Peer   string
	At     time.Time
	Fields []string
}

func (c *Console) exchange(w http.ResponseWriter, r *http.Request) {
	ex, err := c.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	hasPayload := ex.Payload != nil
	ex.Payload = nil // the page never carries it; the personal view does
	evs, _, err := c.store.AuditEvents(r.Context(), store.AuditFilter{ExchangeID: ex.ID})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var shared []sharedFields
	for _, e := range evs {
		if len(e.Fields) > 0 && e.Kind != refbridge.AuditViewed {
			shared = append(shared, sharedFields{Peer: e.Peer, At: e.At, Fields: e.Fields})
		}
	}
	c.render(w, r, http.StatusOK, "exchange", pageData{Title: "exchange", Nav: "exchanges", Flash: r.URL.Query().Get("done"),
		Data: exchangeData{Ex: ex, Events: evs, Shared: shared, HasPayload: hasPayload}})
}

// field is one personal value of a payload, by its JSON path.
type field struct{ Path, Value string }

// flatten lists a JSON document's leaves by path (a.b[0].c).
func flatten(prefix string, v any, out *[]field) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x[k], out)
		}
	case []any:
		for i, e := range x {
			flatten(prefix+"["+strconv.Itoa(i)+"]", e, out)
		}
	case nil:
		// absent values are not shown
	default:
		b, _ := json.Marshal(x)
		s := string(b)
		if str, ok := x.(string); ok {
			s = str
		}
		*out = append(*out, field{Path: prefix, Value: s})
	}
}

// personal shows the decrypted payload of one exchange, after recording in
// the audit trail who looked at which fields (names, not values). It is a
// POST so that a view is always a deliberate click, never a prefetch or a
// link followed from elsewhere.
func (c *Console) personal(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r.Context())
	ex, err := c.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var fields []field
	if ex.Payload != nil {
		var doc any
		if err := json.Unmarshal(ex.Payload, &doc); err != nil {
			c.fail(w, r, refbridge.Errorf(refbridge.EInternal, "exchange %s: payload is not JSON", ex.ID))
			return
		}
		flatten("", doc, &fields)
		names := make([]string, 0, len(fields))
		for _, f := range fields {
			if refbridge.ValidAuditField(f.Path) {
				names = append(names, f.Path)
			}
		}
		if err := c.store.AppendAudit(r.Context(), refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: ex.ID,
			Peer: "console", Actor: v.account.Name, Fields: names, Outcome: "personal_details"}); err != nil {
			c.fail(w, r, err)
			return
		}
		c.log.Info("console: personal details viewed", "account", v.account.Name, "exchange", ex.ID)
	}
	ex.Payload = nil
	c.render(w, r, http.StatusOK, "personal", pageData{Title: "personal", Nav: "exchanges", Data: struct {
		Ex     refbridge.Exchange
		Fields []field
	}{ex, fields}})
}

func (c *Console) operate(w http.ResponseWriter, r *http.Request, op func(id, actor, reason string) (refbridge.Exchange, error), done string) {
	v := viewerOf(r.Context())
	reason := r.PostFormValue("reason")
	if !slices.Contains(operatorReasons(), reason) {
		c.fail(w, r, refbridge.Errorf(refbridge.EInvalid, "choose a reason"))
		return
	}
	id := r.PathValue("id")
	if _, err := op(id, v.account.Name, reason); err != nil {
		c.fail(w, r, err)
		return
	}
	c.log.Info("console: dead exchange "+done, "account", v.account.Name, "exchange", id, "reason", reason)
	http.Redirect(w, r, Prefix+"exchanges/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}

func (c *Console) retry(w http.ResponseWriter, r *http.Request) {
	c.operate(w, r, func(id, actor, reason string) (refbridge.Exchange, error) {
		return c.store.Retry(r.Context(), id, actor, reason)
	}, "retried")
}

func (c *Console) discard(w http.ResponseWriter, r *http.Request) {
	c.operate(w, r, func(id, actor, reason string) (refbridge.Exchange, error) {
		return c.store.Discard(r.Context(), id, actor, reason)
	}, "discarded")
}

// auditFilter reads the audit page's filter.
func auditFilter(q url.Values) (store.AuditFilter, int) {
	var f store.AuditFilter
	if t, err := time.Parse("2006-01-02", q.Get("since")); err == nil {
		f.Since = t
	}
	if t, err := time.Parse("2006-01-02", q.Get("until")); err == nil {
		f.Until = t.Add(24 * time.Hour)
	}
	f.ExchangeID = strings.TrimSpace(q.Get("exchange"))
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	return f, page
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, page := auditFilter(q)
	// Newest first: count, then read the page from the end of the chain.
	_, total, err := c.store.AuditEvents(r.Context(), store.AuditFilter{Since: f.Since, Until: f.Until, ExchangeID: f.ExchangeID, Limit: 1})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	last := max((total+pageSize-1)/pageSize, 1)
	page = min(page, last)
	f.Offset = max(total-page*pageSize, 0)
	f.Limit = total - (page-1)*pageSize - f.Offset
	evs, _, err := c.store.AuditEvents(r.Context(), f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	slices.Reverse(evs)
	c.render(w, r, http.StatusOK, "audit", pageData{Title: "audit", Nav: "audit", Data: struct {
		Events            []refbridge.AuditEvent
		Form              url.Values
		Total, Page, Last int
		Path              string
	}{evs, q, total, page, last, Prefix + "audit"}})
}

// auditExport writes the filtered audit trail as CSV or JSON, in chain
// order, page by page so a long trail does not sit in memory.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request) {
	f, _ := auditFilter(r.URL.Query())
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "json" {
		c.fail(w, r, refbridge.Errorf(refbridge.EInvalid, "format must be csv or json"))
		return
	}
	name := "refbridge-audit-" + c.now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(w)
		cw.Write(refbridge.AuditCSVHeader())
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("[\n"))
	}
	const chunk = 1000
	first := true
	for off := 0; ; off += chunk {
		f.Offset, f.Limit = off, chunk
		evs, _, err := c.store.AuditEvents(r.Context(), f)
		if err != nil {
			// Headers are gone; the truncated file is marked by its end.
			c.log.Error("console: audit export", "err", err)
			return
		}
		for _, e := range evs {
			if cw != nil {
				cw.Write(e.CSVRecord())
				continue
			}
			b, _ := json.Marshal(e)
			if !first {
				w.Write([]byte(",\n"))
			}
			first = false
			w.Write(b)
		}
		if len(evs) < chunk {
			break
		}
	}
	if cw != nil {
		cw.Flush()
	} else {
		w.Write([]byte("\n]\n"))
	}
}

func (c *Console) users(w http.ResponseWriter, r *http.Request) {
	c.renderUsers(w, r, http.StatusOK, r.URL.Query().Get("done"))
}

func (c *Console) renderUsers(w http.ResponseWriter, r *http.Request, status int, flash string) {
	us, err := c.store.Users(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for i := range us {
		us[i].PasswordHash = ""
	}
	c.render(w, r, status, "users", pageData{Title: "users", Nav: "users", Flash: flash, Data: struct {
		Users []refbridge.Account
		Roles []refbridge.Role
	}{us, refbridge.Roles()}})
}

// addUser creates an account from the admin's form. The admin types the
// first password and hands it over; the user changes it with the CLI.
// The change is recorded in the audit trail (account names are login
// handles, not persons' names).
func (c *Console) addUser(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r.Context())
	name := strings.TrimSpace(r.PostFormValue("name"))
	role := refbridge.Role(r.PostFormValue("role"))
	err := c.store.AddUser(r.Context(), name, role, r.PostFormValue("language"), r.PostFormValue("password"))
	switch refbridge.ErrorCodeOf(err) {
	case "":
	case refbridge.EInvalid, refbridge.EConflict:
		c.renderUsers(w, r, http.StatusBadRequest, "user_refused")
		return
	default:
		c.fail(w, r, err)
		return
	}
	if err := c.store.AppendAudit(r.Context(), refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Peer: "console", Actor: v.account.Name,
		Fields: []string{"console_user"}, Outcome: name, Reason: "user_added_" + string(role)}); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"users?done=user_added", http.StatusSeeOther)
}

// disableUser disables an account and ends its sessions; an admin cannot
// disable their own (the last admin would lock everyone out).
func (c *Console) disableUser(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r.Context())
	name := r.PathValue("name")
	if name == v.account.Name {
		c.renderUsers(w, r, http.StatusBadRequest, "user_refused")
		return
	}
	if err := c.store.SetUserDisabled(r.Context(), name, true); err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.store.AppendAudit(r.Context(), refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Peer: "console", Actor: v.account.Name,
		Fields: []string{"console_user"}, Outcome: name, Reason: "user_disabled"}); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"users?done=user_disabled", http.StatusSeeOther)
}
