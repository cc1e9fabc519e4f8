package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"refbridge"
	"refbridge/metrics"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// documented lists every "METHOD /path STATUS" the document declares.
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				out = append(out, method+" "+path+" "+status)
			}
		}
	}
	sort.Strings(out)
	return out
}

// conformanceCase is one request to the real handler whose answer must be
// the documented one for its status.
type conformanceCase struct {
	name   string
	method string
	path   string
	body   []byte
	header []string // name, value pairs
	status int
	// config adjusts the Server (a failing inbox, a small body limit…).
	config func(t *testing.T, c *Config)
}

// TestOpenAPIConformance sends requests that between them produce every
// response the document declares, to the real handlers over the real store,
// and validates each answer (status, headers, body) against the document.
// It fails when a documented response is produced by no case, and when the
// handler serves a route the document lacks.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)

	bearer := []string{"Content-Type", "application/json", "Authorization", "Bearer " + tokenA}
	key := []string{"Content-Type", "application/json", "X-Api-Key", webhookKey}
	interventions := fixture(t, "dtp-interventions-inbound.json")
	decisions := fixture(t, "dtp-decision-inbound.json")
	webhook := webhookBody(t, "case", caseID)
	tooLarge := bytes.Repeat([]byte(" "), 2048)
	small := func(_ *testing.T, c *Config) { c.MaxBodyBytes = 1024 }
	inboxFails := func(err error) func(*testing.T, *Config) {
		return func(_ *testing.T, c *Config) { c.Inbox = &failingInbox{Inbox: c.Inbox, err: err} }
	}
	triggerFails := func(err error) func(*testing.T, *Config) {
		return func(_ *testing.T, c *Config) { c.Trigger = &triggerRecorder{err: err} }
	}
	transient := refbridge.Errorf(refbridge.ETransient, "database is locked")
	internal := refbridge.Errorf(refbridge.EInternal, "disk I/O error")

	var cases []conformanceCase
	// The three DTP routes answer alike; each gets every status.
	for _, route := range []struct {
		path string
		body []byte
	}{{RouteInterventions, interventions}, {RouteDecisions, decisions}, {RouteInbox, interventions}} {
		p := route.path
		cases = append(cases,
			conformanceCase{"accepted", http.MethodPost, p, route.body, bearer, 200, nil},
			conformanceCase{"not JSON", http.MethodPost, p, []byte(`{"interventions":[`), bearer, 400, nil},
			conformanceCase{"no token", http.MethodPost, p, route.body, []string{"Content-Type", "application/json"}, 401, nil},
			conformanceCase{"too large", http.MethodPost, p, tooLarge, bearer, 413, small},
			conformanceCase{"not JSON media type", http.MethodPost, p, route.body, []string{"Content-Type", "text/plain", "Authorization", "Bearer " + tokenA}, 415, nil},
			conformanceCase{"inbox broken", http.MethodPost, p, route.body, bearer, 500, inboxFails(internal)},
			conformanceCase{"inbox busy", http.MethodPost, p, route.body, bearer, 503, inboxFails(transient)},
		)
	}
	cases = append(cases,
		conformanceCase{"decisions on the inbox", http.MethodPost, RouteInbox, decisions, bearer, 200, nil},
		conformanceCase{"a refused item is still 200", http.MethodPost, RouteInterventions,
			withItems(t, refbridge.RequestTypeOutgoingReferral, map[string]any{"progres_interventionnumber": "IV-1", "surprise": 1}), bearer, 200, nil},
		conformanceCase{"webhook accepted", http.MethodPost, RoutePrimeroWebhook, webhook, key, 202, nil},
		conformanceCase{"webhook by basic auth", http.MethodPost, RoutePrimeroWebhook, webhook,
			[]string{"Content-Type", "application/json", "Authorization", basic("primero", webhookKey)}, 202, nil},
		conformanceCase{"webhook not JSON", http.MethodPost, RoutePrimeroWebhook, []byte(`{"data":`), key, 400, nil},
		conformanceCase{"webhook no key", http.MethodPost, RoutePrimeroWebhook, webhook, []string{"Content-Type", "application/json"}, 401, nil},
		conformanceCase{"webhook too large", http.MethodPost, RoutePrimeroWebhook, tooLarge, key, 413, small},
		conformanceCase{"webhook not JSON media type", http.MethodPost, RoutePrimeroWebhook, webhook, []string{"Content-Type", "text/plain", "X-Api-Key", webhookKey}, 415, nil},
		conformanceCase{"webhook not a case", http.MethodPost, RoutePrimeroWebhook, webhookBody(t, "incident", caseID), key, 422, nil},
		conformanceCase{"webhook queue broken", http.MethodPost, RoutePrimeroWebhook, webhook, key, 500, triggerFails(internal)},
		conformanceCase{"webhook queue busy", http.MethodPost, RoutePrimeroWebhook, webhook, key, 503, triggerFails(transient)},
		conformanceCase{"alive", http.MethodGet, RouteHealth, nil, nil, 200, nil},
		conformanceCase{"ready", http.MethodGet, RouteReady, nil, nil, 200, func(_ *testing.T, c *Config) {
			c.Health, c.Circuits = fakeHealth{current: true}, fixedCircuits{"primero": "closed", "dtp": "open"}
		}},
		conformanceCase{"not ready", http.MethodGet, RouteReady, nil, nil, 503, func(_ *testing.T, c *Config) {
			c.Health = fakeHealth{pingErr: transient}
		}},
		conformanceCase{"metrics", http.MethodGet, RouteMetrics, nil, nil, 200, nil},
		conformanceCase{"this document", http.MethodGet, RouteOpenAPI, nil, nil, 200, nil},
	)

	var mu sync.Mutex
	produced := map[string]bool{}
	served := map[string]bool{}
	t.Run("responses", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s %s %d %s", tc.method, tc.path, tc.status, tc.name), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, newStore(t), func(c *Config) {
					// Every harness serves /metrics, so that every route
					// refbridge serve has is compared with the document.
					c.Metrics = metrics.New(metrics.Config{}).Handler()
					if tc.config != nil {
						tc.config(t, c)
					}
				})
				mu.Lock()
				for _, r := range h.srv.registered {
					served[r] = true
				}
				mu.Unlock()
				r := h.do(t, tc.method, tc.path, tc.body, tc.header...)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				validateResponse(t, doc, tc.method, tc.path, r)
				assertNoPersonalData(t, "answer", r.body)
				mu.Lock()
				produced[tc.method+" "+tc.path+" "+strconv.Itoa(r.status)] = true
				mu.Unlock()
			})
		}
	})

	for _, d := range documented(doc) {
		if !produced[d] {
			t.Errorf("documented response %s is produced by no test request", d)
		}
	}
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops[method+" "+path] = true
		}
	}
	for r := range served {
		if !ops[r] {
			t.Errorf("the handler serves %s, which the document lacks", r)
		}
	}
	for op := range ops {
		if !served[op] {
			t.Errorf("the document has %s, which no handler serves", op)
		}
	}
}

// validateResponse checks r against the document's response for the
// operation and status: the status must be documented, the documented
// headers present and valid, and the body valid against its schema.
func validateResponse(t *testing.T, doc *openapi3.T, method, path string, r reply) {
	t.Helper()
	item := doc.Paths.Find(path)
	if item == nil {
		t.Fatalf("%s is not in the document", path)
	}
	op := item.GetOperation(method)
	if op == nil {
		t.Fatalf("%s %s is not in the document", method, path)
	}
	req := httptest.NewRequest(method, path, nil)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req,
			Route:   &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
		},
		Status: r.status,
		Header: r.header,
		Body:   io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status is an error
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s → %d does not conform to openapi.yaml: %v\nbody: %s", method, path, r.status, err, r.body)
	}
}

// TestOpenAPIItemsMatchTheDomainTypes keeps the documented batch items in
// step with the Go types the handler decodes strictly: the same JSON keys,
// no more and no fewer.
func TestOpenAPIItemsMatchTheDomainTypes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for _, tc := range []struct {
		schema string
		typ    reflect.Type
	}{
		{"Intervention", reflect.TypeFor[refbridge.Intervention]()},
		{"ReferralDecision", reflect.TypeFor[refbridge.ReferralDecision]()},
		{"Lookup", reflect.TypeFor[refbridge.Lookup]()},
		{"InterventionBatch", reflect.TypeFor[refbridge.InterventionBatch]()},
		{"DecisionBatch", reflect.TypeFor[refbridge.DecisionBatch]()},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			t.Parallel()
			ref := doc.Components.Schemas[tc.schema]
			if ref == nil || ref.Value == nil {
				t.Fatalf("components.schemas.%s missing", tc.schema)
			}
			var inDoc []string
			for name := range ref.Value.Properties {
				inDoc = append(inDoc, name)
			}
			var inGo []string
			for name := range schemaOf(tc.typ).fields {
				inGo = append(inGo, name)
			}
			slices.Sort(inDoc)
			slices.Sort(inGo)
			if !slices.Equal(inDoc, inGo) {
				t.Errorf("document has %v\nGo type has %v", inDoc, inGo)
			}
			if ap := ref.Value.AdditionalProperties.Has; ap == nil || *ap {
				t.Errorf("%s must say additionalProperties: false (the handler refuses unknown keys)", tc.schema)
			}
		})
	}
}

// TestOpenAPIServed checks that the served document is the embedded one.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), nil)
	r := h.do(t, http.MethodGet, RouteOpenAPI, nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, OpenAPI()) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("GET %s: %d %q, want 200 with the embedded document", RouteOpenAPI, r.status, r.header.Get("Content-Type"))
	}
}
