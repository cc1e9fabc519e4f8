package primerotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"refbridge"
)

// The tests drive the simulator over real HTTP with net/http only, never
// through the refbridge client, so that they pin the wire behaviour the
// client is written against.

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 8, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Users every test simulator has; the password is "pw-" + user name.
const (
	uBridge   = "bridge"   // scope all, sync_external
	uCW1      = "cw1"      // self scope, agency UNICEF, group g1
	uCW2      = "cw2"      // self scope, agency DRC, group g2
	uUNHCR    = "unhcr_cw" // self scope, agency UNHCR
	uGroup    = "grp"      // group scope g1
	uAgency   = "agy"      // agency scope UNICEF
	uReader   = "reader"   // scope all, reads only a few fields
	uWriter   = "writer"   // scope all, writes only a few fields
	uDisabled = "gone"     // disabled
)

func password(user string) string { return "pw-" + user }

func userNamed(name string) refbridge.User { return refbridge.User{UserName: name} }

func ptr[T any](v T) *T { return &v }

// newSim starts a simulator with the standard users and the given options.
func newSim(t testing.TB, opts Options) *Sim {
	t.Helper()
	s := NewServer(t, opts)
	add := func(name, scope, agency string, agencyID int, groups []string, mod func(*UserSpec)) {
		spec := UserSpec{
			User: refbridge.User{
				UserName: name, FullName: "Test " + name, AgencyID: agencyID,
				UserGroupUniqueIDs: groups, Position: "tester",
			},
			Password: password(name), Scope: scope, AgencyUniqueID: agency,
		}
		if mod != nil {
			mod(&spec)
		}
		s.AddUser(spec)
	}
	add(uBridge, ScopeAll, "UNICEF", 1, nil, func(u *UserSpec) { u.Permissions = []string{PermSyncExternal} })
	add(uCW1, ScopeSelf, "UNICEF", 1, []string{"g1"}, nil)
	add(uCW2, ScopeSelf, "DRC", 2, []string{"g2"}, nil)
	add(uUNHCR, ScopeSelf, "UNHCR", 3, nil, nil)
	add(uGroup, ScopeGroup, "DRC", 2, []string{"g1"}, nil)
	add(uAgency, ScopeAgency, "UNICEF", 1, nil, nil)
	add(uReader, ScopeAll, "UNICEF", 1, nil, func(u *UserSpec) {
		u.ReadableFields = []string{"sex", "name_first", "tag"}
	})
	add(uWriter, ScopeAll, "UNICEF", 1, nil, func(u *UserSpec) {
		u.WritableFields = []string{"name_first", "services_section"}
	})
	add(uDisabled, ScopeAll, "UNICEF", 1, nil, func(u *UserSpec) { u.Disabled = ptr(true) })
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// obj decodes the body as a JSON object.
func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

// data returns body["data"] as an object.
func (r response) data(t testing.TB) map[string]any {
	t.Helper()
	d, ok := r.obj(t)["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data object in %s", r.body)
	}
	return d
}

// list returns body["data"] as a list of objects.
func (r response) list(t testing.TB) []map[string]any {
	t.Helper()
	raw, ok := r.obj(t)["data"].([]any)
	if !ok {
		t.Fatalf("no data list in %s", r.body)
	}
	out := make([]map[string]any, len(raw))
	for i, e := range raw {
		out[i] = e.(map[string]any)
	}
	return out
}

// firstError returns errors[0] of the error envelope.
func (r response) firstError(t testing.TB) map[string]any {
	t.Helper()
	errs, ok := r.obj(t)["errors"].([]any)
	if !ok || len(errs) == 0 {
		t.Fatalf("no error envelope in %s", r.body)
	}
	return errs[0].(map[string]any)
}

// request sends one request. user "" sends no credentials; a user name
// sends HTTP Basic with its password; "Bearer x" sends that header.
func request(t testing.TB, s *Sim, method, path, user string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case user == "":
	case len(user) > 7 && user[:7] == "Bearer ":
		req.Header.Set("Authorization", user)
	default:
		req.SetBasicAuth(user, password(user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustStatus fails the test unless r has the wanted status.
func mustStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
}

// createCase POSTs a case as user and returns its id.
func createCase(t testing.TB, s *Sim, user string, data map[string]any) string {
	t.Helper()
	r := request(t, s, http.MethodPost, "/api/v2/cases", user, map[string]any{"data": data})
	mustStatus(t, r, http.StatusOK)
	return r.data(t)["id"].(string)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tags returns the "tag" field of each listed case, sorted.
func tags(items []map[string]any) []string {
	out := []string{}
	for _, it := range items {
		if s, ok := it["tag"].(string); ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func services(t testing.TB, c map[string]any) []map[string]any {
	t.Helper()
	list, _ := c["services_section"].([]any)
	out := make([]map[string]any, len(list))
	for i, e := range list {
		out[i] = e.(map[string]any)
	}
	return out
}
