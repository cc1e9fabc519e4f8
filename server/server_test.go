package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
)

// TestNew: the pieces without which the server would be unsafe or useless
// are refused at start; defaults are filled in.
func TestNew(t *testing.T) {
	t.Parallel()
	ok := Config{Tokens: []string{tokenA}, Inbox: newStore(t).DB, Validator: newValidator(t)}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"minimal", func(*Config) {}, ""},
		{"no inbox", func(c *Config) { c.Inbox = nil }, "Inbox"},
		{"no validator", func(c *Config) { c.Validator = nil }, "Validator"},
		{"no tokens", func(c *Config) { c.Tokens = nil }, "Tokens"},
		{"only blank tokens", func(c *Config) { c.Tokens = []string{"", "  \n"} }, "Tokens"},
		{"negative limit", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"trigger without keys", func(c *Config) { c.Trigger = &triggerRecorder{} }, "WebhookKeys"},
		{"trigger with keys", func(c *Config) { c.Trigger, c.WebhookKeys = &triggerRecorder{}, []string{webhookKey} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.mod(&cfg)
			s, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil || s.Handler() == nil || s.maxBody != DefaultMaxBodyBytes || s.now == nil || s.log == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestRoutes: every route, its method, and the JSON 404/405 around them;
// every answer carries the security headers and a request id.
func TestRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), nil)
	dtp := []string{"Content-Type", "application/json", "Authorization", "Bearer " + tokenA}
	hook := []string{"Content-Type", "application/json", "X-Api-Key", webhookKey}
	tests := []struct {
		method, path string
		body         []byte
		headers      []string
		status       int
		allow        string
	}{
		{http.MethodPost, RouteInterventions, fixture(t, "dtp-interventions-inbound.json"), dtp, http.StatusOK, ""},
		{http.MethodPost, RouteDecisions, fixture(t, "dtp-decision-inbound.json"), dtp, http.StatusOK, ""},
		{http.MethodPost, RouteInbox, fixture(t, "dtp-decision-inbound.json"), dtp, http.StatusOK, ""},
		{http.MethodPost, RoutePrimeroWebhook, webhookBody(t, "case", caseID), hook, http.StatusAccepted, ""},
		{http.MethodGet, RouteHealth, nil, nil, http.StatusOK, ""},
		{http.MethodHead, RouteHealth, nil, nil, http.StatusOK, ""},
		{http.MethodGet, RouteInterventions, nil, dtp, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, RouteInbox, nil, dtp, http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, RoutePrimeroWebhook, nil, hook, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, RouteHealth, nil, nil, http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/", nil, nil, http.StatusNotFound, ""},
		{http.MethodPost, "/api/v1/dtp/interventions/extra", nil, dtp, http.StatusNotFound, ""},
		{http.MethodGet, "/api/v2/cases?name=Testchild", nil, nil, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			r := h.do(t, tt.method, tt.path, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; %s", r.status, tt.status, r.body)
			}
			for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
			if tt.method != http.MethodHead && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if tt.status >= 400 {
				errorAnswer(t, r)
			}
			if tt.path == RouteHealth && tt.method == http.MethodGet && strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
				t.Errorf("health body %s", r.body)
			}
		})
	}
}

// TestHTTPStatus: the one mapping from error codes to statuses.
func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{&refbridge.Error{Code: refbridge.EInvalid}, 400},
		{&refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(422)}, 422},
		{&refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(413)}, 413},
		{&refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(415)}, 415},
		{&refbridge.Error{Code: refbridge.EUnauthorized}, 401},
		{&refbridge.Error{Code: refbridge.EForbidden}, 403},
		{&refbridge.Error{Code: refbridge.ENotFound}, 404},
		{&refbridge.Error{Code: refbridge.EConflict}, 409},
		{&refbridge.Error{Code: refbridge.ERateLimited}, 429},
		{&refbridge.Error{Code: refbridge.ETransient}, 503},
		{&refbridge.Error{Code: refbridge.EStoreFull}, 503},
		{&refbridge.Error{Code: refbridge.EInternal}, 500},
		{fmt.Errorf("wrapped: %w", &refbridge.Error{Code: refbridge.EConflict}), 409},
		{errors.New("plain"), 500},
	}
	for _, tt := range tests {
		if got := httpStatus(tt.err); got != tt.want {
			t.Errorf("httpStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestRequestLog: one line per request with route, status, counts and
// duration; the caller's request id is kept when it is a plain token.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), func(c *Config) {
		clock := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
		c.Now = func() time.Time { clock = clock.Add(7 * time.Millisecond); return clock }
	})
	r := h.do(t, http.MethodPost, RouteInterventions, fixture(t, "dtp-interventions-inbound.json"),
		"Content-Type", "application/json", "Authorization", "Bearer "+tokenA, "X-Request-Id", "dtp-req-42")
	if r.header.Get("X-Request-Id") != "dtp-req-42" {
		t.Errorf("request id %q", r.header.Get("X-Request-Id"))
	}
	h.do(t, http.MethodGet, "/nowhere/Testchild", nil, "X-Request-Id", "bad id with spaces")
	lines := logLines(t, h.logs.String())
	if len(lines) != 2 {
		t.Fatalf("%d log lines: %s", len(lines), h.logs.String())
	}
	want := map[string]any{"msg": "http request", "request_id": "dtp-req-42", "route": "POST " + RouteInterventions,
		"status": float64(200), "request_type": f1, "received": float64(3), "stored": float64(3), "accepted": float64(2),
		"duplicate": float64(0), "updated": float64(0), "rejected": float64(1), "duration": float64(7 * time.Millisecond)}
	for k, v := range want {
		if !reflect.DeepEqual(lines[0][k], v) {
			t.Errorf("log %s = %v, want %v", k, lines[0][k], v)
		}
	}
	if lines[1]["route"] != "unmatched" || lines[1]["request_id"] == "bad id with spaces" || lines[1]["status"] != float64(404) {
		t.Errorf("unmatched request logged as %v", lines[1])
	}
}

func logLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestNoPersonalDataLeaks sends the fixtures and refused variants of them
// (personal values in unknown keys, wrong types, repeated keys, bad items,
// failing inbox) and checks that no answer and no log line holds a
// person's value.
func TestNoPersonalDataLeaks(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		items := fixtureItems(t, "dtp-interventions-inbound.json")
		wrongType := clone(t, items[0])
		wrongType["individuals.progres_dateofbirth"] = []any{"2014-03-15"}
		nameAsKey := clone(t, items[0])
		nameAsKey["progres_interventionnumber"] = "TST-LEAK-1"
		nameAsKey["individuals.progres_givenname"] = map[string]any{"Name": "Testchild"}
		keyless := clone(t, items[0])
		delete(keyless, "progres_interventionnumber")
		bodies := [][]byte{
			fixture(t, "dtp-interventions-inbound.json"),
			fixture(t, "dtp-interventions-inbound.json"),
			fixture(t, "dtp-decision-inbound.json"),
			withItems(t, f1, wrongType, nameAsKey, keyless, items[1]),
			[]byte(`{"interventions":[{"progres_interventionnumber":"N","individuals.progres_givenname":"Testchild","individuals.progres_givenname":"Fixture"}]}`),
			[]byte(`{"interventions":[{"individuals.progres_givenname":"Testchild"` + strings.Repeat(" ", 10) + `}] trailing Fixture`),
			[]byte(`{"interventions":[{"individuals.progres_dateofbirth":2014-03-15}]}`),
			[]byte("{\"interventions\":[{\"individuals.progres_givenname\":\"Testchild\xff\"}]}"),
		}
		var out bytes.Buffer
		for _, route := range []string{RouteInterventions, RouteInbox} {
			for _, b := range bodies {
				r := h.postDTP(t, route, b, tokenA)
				out.Write(r.body)
				for k, vs := range r.header {
					out.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
				}
			}
		}
		for _, b := range [][]byte{webhookBody(t, "case", caseID), webhookBody(t, "Testchild", caseID), webhookBody(t, "case", "Fixture")} {
			out.Write(h.do(t, http.MethodPost, RoutePrimeroWebhook, b, "Content-Type", "application/json", "X-Api-Key", webhookKey).body)
		}
		failing := newHarness(t, db, func(c *Config) {
			c.Inbox = &failingInbox{Inbox: c.Inbox, err: errors.New("Testchild Fixture 2014-03-15")}
		})
		out.Write(failing.postDTP(t, RouteInterventions, fixture(t, "dtp-interventions-inbound.json"), tokenA).body)

		assertNoPersonalData(t, "answers", out.Bytes())
		assertNoPersonalData(t, "log", []byte(h.logs.String()))
		assertNoPersonalData(t, "log", []byte(failing.logs.String()))
		if !strings.Contains(h.logs.String(), `"route"`) {
			t.Error("nothing was logged; the check above proves nothing")
		}
	})
}

// TestScanPaths: the scanner's paths for unknown and repeated keys, per item.
func TestScanPaths(t *testing.T) {
	t.Parallel()
	sch := batchSchema(reflect.TypeFor[refbridge.InterventionBatch]())
	tests := []struct {
		name string
		body string
		want []string // item|field|rule
		deep bool
	}{
		{"clean", `{"__query_params":{"anything":[{"x":1}]},"interventions":[{"progres_interventionnumber":"N","user.progres_partner":{"Name":"P","KeyAttributes":[{"k":1}]}}],"request_type":"x"}`, nil, false},
		{"unknown in item 2", `{"interventions":[{},{},{"foo":1}]}`, []string{"2|foo|unknown_field"}, false},
		{"unknown in a lookup", `{"interventions":[{"user.progres_partner":{"Name":"P","Bad":[1,{"x":2}]}}]}`, []string{"0|user.progres_partner.Bad|unknown_field"}, false},
		{"repeated in item", `{"interventions":[{"a.b":1},{"progres_id":1,"spncategory2code":"x","spncategory2code":"y"}]}`, []string{"0|a.b|unknown_field", "1|progres_id|unknown_field", "1|spncategory2code|duplicate_key"}, false},
		{"envelope", `{"interventions":[],"x":{"y":1},"interventions":[]}`, []string{"-1|x|unknown_field", "-1|interventions|duplicate_key"}, false},
		{"escaped key", `{"interventions":[{"progres_interventionnumber":"N","\u0070rogres_id":1}]}`, []string{"0|progres_id|unknown_field"}, false},
		{"strings that look like syntax", `{"interventions":[{"progres_interventionnumber":"{[\"\\\",:]}","foo":"}"}]}`, []string{"0|foo|unknown_field"}, false},
		{"lookup given as a list", `{"interventions":[{"user.progres_partner":[{"Bad":1}]}]}`, nil, false},
		{"item a list", `{"interventions":[[{"foo":1}]]}`, nil, false},
		{"deep", `{"interventions":[` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `]}`, nil, true},
		{"just deep enough", `{"interventions":[` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `]}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !json.Valid([]byte(tt.body)) {
				t.Fatalf("test body is not JSON")
			}
			issues, deep := scan([]byte(tt.body), sch)
			var got []string
			for _, is := range issues {
				got = append(got, fmt.Sprintf("%d|%s|%s", is.item, is.field, is.rule))
			}
			if !slices.Equal(got, tt.want) || deep != tt.deep {
				t.Errorf("got %v deep=%v, want %v deep=%v", got, deep, tt.want, tt.deep)
			}
		})
	}
}

// TestContentHash: equal content gives an equal hash whatever the key
// order, spacing or row order; any change of a value changes it.
func TestContentHash(t *testing.T) {
	t.Parallel()
	canon := func(s string) []byte {
		t.Helper()
		b, err := canonicalJSON(json.RawMessage(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := contentHash([][]byte{canon(`{"a":1,"b":{"y":2,"x":[1,2]}}`), canon(`{"c":"3"}`)})
	b := contentHash([][]byte{canon(`{"c" : "3"}`), canon(`{ "b":{"x":[1,2],"y":2},"a":1 }`)})
	c := contentHash([][]byte{canon(`{"a":1,"b":{"y":2,"x":[2,1]}}`), canon(`{"c":"3"}`)})
	d := contentHash([][]byte{canon(`{"a":1.0,"b":{"y":2,"x":[1,2]}}`), canon(`{"c":"3"}`)})
	if a != b || a == c || a == d || len(a) != 64 {
		t.Errorf("hashes a=%s b=%s c=%s d=%s", a, b, c, d)
	}
}

// TestOnlyLookupsHoldRawJSON: canonicalRow sorts the keys of raw JSON only
// in lookups' KeyAttributes; a new raw field elsewhere in the domain types
// would make equal content hash differently, so it must be noticed here.
func TestOnlyLookupsHoldRawJSON(t *testing.T) {
	t.Parallel()
	raw := reflect.TypeFor[json.RawMessage]()
	var walk func(t reflect.Type, path string, seen map[reflect.Type]bool) []string
	walk = func(t reflect.Type, path string, seen map[reflect.Type]bool) []string {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == raw {
			return []string{path}
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			return walk(t.Elem(), path+"[]", seen)
		case reflect.Struct:
			if seen[t] {
				return nil
			}
			seen[t] = true
			var out []string
			for f := range t.Fields() {
				name := f.Name
				if f.Type == reflect.TypeFor[*refbridge.Lookup]() {
					name = "Lookup"
				}
				out = append(out, walk(f.Type, path+"."+name, seen)...)
			}
			return out
		}
		return nil
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[refbridge.Intervention](), reflect.TypeFor[refbridge.ReferralDecision]()} {
		got := walk(typ, typ.Name(), map[reflect.Type]bool{})
		for _, p := range got {
			if !strings.HasSuffix(p, ".Lookup.KeyAttributes[]") {
				t.Errorf("%s holds raw JSON at %s, which canonicalRow does not sort", typ.Name(), p)
			}
		}
	}
	// And canonicalRow does sort them.
	enc := canonicalRow[refbridge.Intervention]()
	a, err := enc(&refbridge.Intervention{UserPartner: &refbridge.Lookup{KeyAttributes: []json.RawMessage{json.RawMessage(`{"b":1, "a":2}`)}}})
	if err != nil || !strings.Contains(string(a), `"KeyAttributes":[{"a":2,"b":1}]`) {
		t.Errorf("canonical row %s, %v", a, err)
	}
}

// TestScanBoundsProblems: a body of thousands of bad keys gets a bounded
// answer, and the item is still refused.
func TestScanBoundsProblems(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	sb.WriteString(`{"interventions":[{"progres_interventionnumber":"N"`)
	for i := range 5000 {
		fmt.Fprintf(&sb, `,"k%d":1`, i)
	}
	sb.WriteString(`}],"__query_params":{` + strings.Repeat(`"a":1,`, 5000) + `"a":1}}`)
	issues, _ := scan([]byte(sb.String()), batchSchema(reflect.TypeFor[refbridge.InterventionBatch]()))
	per := map[int]int{}
	for _, is := range issues {
		per[is.item]++
	}
	if per[0] != maxIssues+1 || per[-1] != maxIssues+1 {
		t.Errorf("issues per item %v, want %d each", per, maxIssues+1)
	}
	h := newHarness(t, newStore(t), nil)
	body := []byte(strings.Replace(sb.String(), `"__query_params":{`+strings.Repeat(`"a":1,`, 5000)+`"a":1}`, `"__query_params":{}`, 1))
	resp := batchAnswer(t, h.postDTP(t, RouteInterventions, body, tokenA))
	if resp.Rejected != 1 || len(resp.Results[0].Problems) != maxIssues+1 {
		t.Errorf("%+v, %d problems", resp.counts, len(resp.Results[0].Problems))
	}
}
