package primero_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/egress"
	"refbridge/fault"
	"refbridge/primero"
	"refbridge/primero/primerotest"
	"refbridge/profile"
)

// The client suite: every test runs the real client against the Primero
// simulator over HTTP.

const (
	bridgeUser = "bridge_api"
	bridgePass = "correct horse battery staple"
)

// fakeClock is a settable clock shared by the simulator (token expiry).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 6, 8, 0, 0, 0, time.UTC)}
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

// newSim starts a simulator with the bridge's API user (all fields readable,
// scope all, sync_external).
func newSim(tb testing.TB, opts primerotest.Options) *primerotest.Sim {
	tb.Helper()
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	s := primerotest.NewServer(tb, opts)
	s.AddUser(primerotest.UserSpec{
		User:        refbridge.User{UserName: bridgeUser, FullName: "Bridge API"},
		Password:    bridgePass,
		Permissions: []string{primerotest.PermSyncExternal},
	})
	return s
}

// gambella loads the Gambella profile, whose allow-lists the engine applies
// to every body it sends.
func gambella(tb testing.TB) *profile.Profile {
	tb.Helper()
	p, err := profile.Load("gambella")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// gambellaWith is the Gambella profile with more case fields allowed.
func gambellaWith(tb testing.TB, caseFields ...string) *profile.Profile {
	tb.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		tb.Fatal(err)
	}
	const anchor = "      - services_section.progres_interventionnumber\n"
	if strings.Count(string(src), anchor) != 1 {
		tb.Fatalf("the Gambella case allow-list no longer ends with %q", anchor)
	}
	extra := anchor
	for _, f := range caseFields {
		extra += "      - " + f + "\n"
	}
	p, err := profile.Parse([]byte(strings.Replace(string(src), anchor, extra, 1)))
	if err != nil {
		tb.Fatal(err, refbridge.ErrorProblems(err))
	}
	return p
}

// filtered passes v through the EgressFilter with the Gambella profile's
// general allow-lists, as the engine does before every write.
func filtered[T egress.Body](tb testing.TB, v T) egress.Message[T] {
	tb.Helper()
	m := egress.Filter(gambella(tb), "", v)
	if err := m.Err(); err != nil {
		tb.Fatal(err)
	}
	return m
}

// noSleep skips the waits between retries so that tests stay fast; tests
// about the wait itself record it instead.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// newClient returns a client of s for the bridge user; edit adjusts the
// configuration.
func newClient(tb testing.TB, s *primerotest.Sim, edit func(*primero.Config)) *primero.Client {
	tb.Helper()
	cfg := primero.Config{
		BaseURL:  s.URL,
		UserName: bridgeUser,
		Password: bridgePass,
		Timeout:  10 * time.Second,
		Retry:    refbridge.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryAfter: time.Minute},
		Sleep:    noSleep,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := primero.New(cfg)
	if err != nil {
		tb.Fatalf("primero.New: %v", err)
	}
	return c
}

// genCase builds synthetic case i (invented values only).
func genCase(i int) map[string]any {
	sex := "female"
	if i%2 == 1 {
		sex = "male"
	}
	return map[string]any{
		"name_first":            "Testchild",
		"name_last":             fmt.Sprintf("Fixture%05d", i),
		"sex":                   sex,
		"age":                   5 + i%12,
		"date_of_birth":         "2014-03-15",
		"unhcr_individual_no":   fmt.Sprintf("TST-%08d", i),
		"owned_by":              "test_caseworker",
		"consent_for_services":  true,
		"disclosure_other_orgs": true,
		"services_section": []any{map[string]any{
			"unique_id":                   fmt.Sprintf("f0f0f0f0-0000-4000-8000-%012d", i),
			"service_type":                "shelter",
			"service_response_type":       "service_provision",
			"service_implementing_agency": "UNHCR",
		}},
	}
}

// collect runs a Cases walk to its end and returns the ids in order and
// the error that ended it, if any.
func collect(ctx context.Context, c *primero.Client, q primero.CaseQuery) ([]string, error) {
	var ids []string
	for cs, err := range c.Cases(ctx, q) {
		if err != nil {
			return ids, err
		}
		ids = append(ids, cs.ID)
	}
	return ids, nil
}

// assertExactlyOnce fails unless got holds every id of want exactly once
// and nothing else.
func assertExactlyOnce(tb testing.TB, got, want []string) {
	tb.Helper()
	seen := make(map[string]int, len(got))
	for _, id := range got {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			tb.Fatalf("case %s seen %d times, want once", id, seen[id])
		}
	}
	if len(got) != len(want) {
		tb.Fatalf("got %d cases, want %d", len(got), len(want))
	}
}

func asError(tb testing.TB, err error) *refbridge.Error {
	tb.Helper()
	var e *refbridge.Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T) is not a *refbridge.Error", err, err)
	}
	return e
}

func TestCasesPaginatesEveryCaseOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		auth      primero.AuthMode
		per       int
		serverMax int // Primero's cap on per; 0 = 1000
		wantPages int
	}{
		{name: "default per", per: 0, wantPages: 5},
		{name: "max per", per: 1000, wantPages: 3},
		{name: "odd per", per: 333, wantPages: 8},
		{name: "token auth", auth: primero.AuthToken, per: 500, wantPages: 5},
		{name: "server caps per below ours", per: 1000, serverMax: 300, wantPages: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, primerotest.Options{MaxPer: tt.serverMax, DisableBasicAuth: tt.auth == primero.AuthToken})
			want := s.SeedCases(2500, genCase)
			c := newClient(t, s, func(cfg *primero.Config) { cfg.Auth = tt.auth })

			got, err := collect(t.Context(), c, primero.CaseQuery{Per: tt.per})
			if err != nil {
				t.Fatalf("Cases: %v", err)
			}
			assertExactlyOnce(t, got, want)
			if n := s.Requests(primerotest.PatternListCases); n != tt.wantPages {
				t.Errorf("pages fetched = %d, want %d", n, tt.wantPages)
			}
		})
	}
}

func TestCasesDedupesRecordsShiftedAcrossPages(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	original := s.SeedCases(1000, genCase)
	c := newClient(t, s, nil)

	// Newest first: cases created during the walk push every later page
	// back, so the next page starts with cases already yielded.
	var got []string
	for cs, err := range c.Cases(t.Context(), primero.CaseQuery{Per: 100, Order: "desc"}) {
		if err != nil {
			t.Fatalf("Cases: %v", err)
		}
		got = append(got, cs.ID)
		if len(got) == 100 {
			s.SeedCases(50, genCase)
		}
	}
	seen := map[string]int{}
	for _, id := range got {
		if seen[id]++; seen[id] > 1 {
			t.Fatalf("case %s yielded twice", id)
		}
	}
	for _, id := range original {
		if seen[id] != 1 {
			t.Fatalf("original case %s seen %d times", id, seen[id])
		}
	}
}

func TestCasesFilters(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, primerotest.Options{Now: clock.Now})
	early := s.SeedCases(30, genCase)
	t0 := clock.Now()
	clock.Advance(time.Hour)
	late := s.SeedCases(20, func(i int) map[string]any { return genCase(1000 + i) })
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "unhcr_cw"}, Password: "x"})
	assigned := s.SeedCase(map[string]any{"owned_by": "test_caseworker", "assigned_user_names": []any{"unhcr_cw"}})
	c := newClient(t, s, nil)

	tests := []struct {
		name string
		q    primero.CaseQuery
		want []string
	}{
		{"id field", primero.CaseQuery{Equal: map[string]string{"unhcr_individual_no": "TST-00000007"}}, []string{early[7]}},
		{"case_id", primero.CaseQuery{Equal: map[string]string{"case_id": s.Case(early[9])["case_id"].(string)}}, []string{early[9]}},
		{"readable field", primero.CaseQuery{Equal: map[string]string{"sex": "male", "unhcr_individual_no": "TST-00000003"}}, []string{early[3]}},
		{"boolean field", primero.CaseQuery{Equal: map[string]string{"consent_for_services": "true"}, Per: 7}, append(slices.Clone(early), late...)},
		{"updated since", primero.CaseQuery{UpdatedFrom: t0.Add(30 * time.Minute)}, append(slices.Clone(late), assigned)},
		// Sent as 1970-01-01T00:00:00Z..B: "..B" alone would be dropped
		// and return every case.
		{"updated until", primero.CaseQuery{UpdatedTo: t0.Add(time.Minute)}, early},
		{"window", primero.CaseQuery{UpdatedFrom: t0.Add(-time.Minute), UpdatedTo: t0.Add(time.Minute), Per: 4}, early},
		{"associated user", primero.CaseQuery{AssociatedUser: "unhcr_cw"}, []string{assigned}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := collect(t.Context(), c, tt.q)
			if err != nil {
				t.Fatalf("Cases: %v", err)
			}
			assertExactlyOnce(t, got, tt.want)
		})
	}
}

// A filter on a field the API user may not read is silently ignored by
// Primero; the client must notice and refuse the unfiltered records.
func TestCasesDetectsSilentlyIgnoredFilter(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	s.SeedCases(40, genCase)
	// A role whose forms do not show "protection_status" nor "sex" is
	// seeded with a case that has protection_status so the field exists.
	s.SeedCase(map[string]any{"protection_status": "separated", "sex": "female"})
	s.AddUser(primerotest.UserSpec{
		User:           refbridge.User{UserName: "narrow_api"},
		Password:       "narrow pass",
		ReadableFields: []string{"name_first", "unhcr_individual_no", "associated_user_names", "owned_by"},
	})
	narrow := newClient(t, s, func(cfg *primero.Config) { cfg.UserName, cfg.Password = "narrow_api", "narrow pass" })
	full := newClient(t, s, nil)

	tests := []struct {
		name      string
		client    *primero.Client
		q         primero.CaseQuery
		wantField string // "" = the walk succeeds
		wantCases int
	}{
		{"readable: filtered by Primero", full, primero.CaseQuery{Equal: map[string]string{"protection_status": "separated"}}, "", 1},
		{"unreadable: ignored by Primero", narrow, primero.CaseQuery{Equal: map[string]string{"protection_status": "separated"}}, "protection_status", 0},
		// sex is always filterable, but not readable: the records lack the
		// field, so the match cannot be shown and the walk refuses.
		{"filterable but unreadable", narrow, primero.CaseQuery{Equal: map[string]string{"sex": "female"}}, "sex", 0},
		{"id field, readable", narrow, primero.CaseQuery{Equal: map[string]string{"unhcr_individual_no": "TST-00000004"}}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := 0
			var err error
			for _, e := range tt.client.Cases(t.Context(), tt.q) {
				if e != nil {
					err = e
					break
				}
				n++
			}
			if n != tt.wantCases {
				t.Errorf("yielded %d cases, want %d", n, tt.wantCases)
			}
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Cases: %v", err)
				}
				return
			}
			e := asError(t, err)
			if e.Code != refbridge.EForbidden || !strings.Contains(e.Message, tt.wantField) {
				t.Fatalf("got %v, want forbidden naming %s", err, tt.wantField)
			}
			for _, v := range tt.q.Equal {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error quotes the filter value: %v", err)
				}
			}
		})
	}
}

func TestTokenExpiresMidIteration(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// Basic disabled: every call must carry the bearer token.
	s := newSim(t, primerotest.Options{Now: clock.Now, TokenTTL: time.Hour, DisableBasicAuth: true})
	want := s.SeedCases(1000, genCase)
	c := newClient(t, s, func(cfg *primero.Config) { cfg.Auth = primero.AuthToken })

	var got []string
	for cs, err := range c.Cases(t.Context(), primero.CaseQuery{Per: 100}) {
		if err != nil {
			t.Fatalf("Cases: %v", err)
		}
		got = append(got, cs.ID)
		if len(got) == 350 {
			if n := s.Requests(primerotest.PatternLogin); n != 1 {
				t.Fatalf("logins before expiry = %d, want 1 (token reused across pages)", n)
			}
			clock.Advance(2 * time.Hour)
		}
	}
	assertExactlyOnce(t, got, want)
	if n := s.Requests(primerotest.PatternLogin); n != 2 {
		t.Errorf("logins = %d, want 2 (one transparent re-login)", n)
	}
	// 10 pages, plus the one refused with the expired token.
	if n := s.Requests(primerotest.PatternListCases); n != 11 {
		t.Errorf("list requests = %d, want 11", n)
	}
}

func TestTokenSharedByConcurrentCalls(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, primerotest.Options{Now: clock.Now, DisableBasicAuth: true})
	ids := s.SeedCases(8, genCase)
	c := newClient(t, s, func(cfg *primero.Config) { cfg.Auth = primero.AuthToken })

	getAll := func() {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				if _, err := c.GetCase(t.Context(), ids[i%len(ids)]); err != nil {
					t.Errorf("GetCase: %v", err)
				}
			})
		}
		wg.Wait()
	}
	getAll()
	if n := s.Requests(primerotest.PatternLogin); n != 1 {
		t.Fatalf("logins after 32 concurrent first calls = %d, want 1", n)
	}
	clock.Advance(2 * time.Hour)
	getAll()
	if n := s.Requests(primerotest.PatternLogin); n != 2 {
		t.Fatalf("logins after the token expired under 32 concurrent calls = %d, want 2", n)
	}
}

func TestCredentialRotation(t *testing.T) {
	t.Parallel()
	const newPass = "rotated battery staple"
	tests := []struct {
		name string
		auth primero.AuthMode
	}{
		{"token", primero.AuthToken},
		{"basic", primero.AuthBasic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			s := newSim(t, primerotest.Options{Now: clock.Now, DisableBasicAuth: tt.auth == primero.AuthToken})
			id := s.SeedCase(genCase(1))
			c := newClient(t, s, func(cfg *primero.Config) { cfg.Auth = tt.auth })
			if _, err := c.GetCase(t.Context(), id); err != nil {
				t.Fatalf("GetCase: %v", err)
			}

			// The password is rotated in Primero and the token expires
			// before the bridge is told.
			s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: bridgeUser}, Password: newPass})
			clock.Advance(2 * time.Hour)
			_, err := c.GetCase(t.Context(), id)
			e := asError(t, err)
			if e.Code != refbridge.EUnauthorized || e.Peer != "primero" {
				t.Fatalf("after rotation: got %v, want primero unauthorized", err)
			}
			if strings.Contains(err.Error(), bridgePass) {
				t.Errorf("error quotes the password: %v", err)
			}
			if tt.auth == primero.AuthToken {
				if n := s.Requests(primerotest.PatternLogin); n != 2 {
					t.Errorf("logins = %d, want 2 (exactly one re-login attempt)", n)
				}
			}

			if err := c.SetCredentials(bridgeUser, newPass); err != nil {
				t.Fatalf("SetCredentials: %v", err)
			}
			if _, err := c.GetCase(t.Context(), id); err != nil {
				t.Fatalf("GetCase after SetCredentials: %v", err)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration
		maxWait    time.Duration // policy's MaxRetryAfter
		wantSleeps []time.Duration
		wantCode   refbridge.ErrorCode // "" = success after the wait
	}{
		{name: "429 waits Retry-After", status: 429, retryAfter: 7 * time.Second, maxWait: time.Minute, wantSleeps: []time.Duration{7 * time.Second}},
		{name: "503 waits Retry-After", status: 503, retryAfter: 3 * time.Second, maxWait: time.Minute, wantSleeps: []time.Duration{3 * time.Second}},
		{name: "longer than we wait in-line", status: 429, retryAfter: 120 * time.Second, maxWait: time.Minute, wantCode: refbridge.ERateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, primerotest.Options{})
			want := s.SeedCases(30, genCase)
			s.Faults().Set(primerotest.PatternListCases, fault.Rule{ErrorRate: 1, Statuses: []int{tt.status}, RetryAfter: tt.retryAfter})
			var mu sync.Mutex
			var sleeps []time.Duration
			c := newClient(t, s, func(cfg *primero.Config) {
				cfg.Retry.MaxRetryAfter = tt.maxWait
				cfg.Sleep = func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					sleeps = append(sleeps, d)
					mu.Unlock()
					s.Faults().Clear() // the peer recovers while we wait
					return ctx.Err()
				}
			})
			got, err := collect(t.Context(), c, primero.CaseQuery{})
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(sleeps, tt.wantSleeps) {
				t.Errorf("waits = %v, want %v", sleeps, tt.wantSleeps)
			}
			if tt.wantCode != "" {
				e := asError(t, err)
				if e.Code != tt.wantCode || e.RetryAfter != tt.retryAfter {
					t.Fatalf("got %v (retry after %v), want %s with retry after %v", err, e.RetryAfter, tt.wantCode, tt.retryAfter)
				}
				return
			}
			if err != nil {
				t.Fatalf("Cases: %v", err)
			}
			assertExactlyOnce(t, got, want)
		})
	}
}

func TestCasesSurviveUnavailablePeer(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{Seed: 7})
	want := s.SeedCases(1000, genCase)
	s.Faults().Set("*", fault.Rule{ErrorRate: 0.3}) // 503 on 30% of every request
	c := newClient(t, s, func(cfg *primero.Config) { cfg.Retry.MaxAttempts = 10 })

	got, err := collect(t.Context(), c, primero.CaseQuery{Per: 50})
	if err != nil {
		t.Fatalf("Cases: %v", err)
	}
	assertExactlyOnce(t, got, want)
	if s.Faults().Injected(primerotest.PatternListCases) == 0 {
		t.Fatal("no 503 was injected; the test proves nothing")
	}
}

func TestCasesCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// cancelAt is called when the 150th case is yielded; it arranges
		// for cancel to be called.
		cancelAt func(s *primerotest.Sim, cancel context.CancelFunc)
		// requests is how many list requests reach the server: the third
		// page is never sent when ctx ended before it.
		requests int
	}{
		{"between pages", func(_ *primerotest.Sim, cancel context.CancelFunc) { cancel() }, 2},
		{"while a page request hangs", func(s *primerotest.Sim, cancel context.CancelFunc) {
			s.Faults().Set(primerotest.PatternListCases, fault.Rule{HangRate: 1})
			time.AfterFunc(50*time.Millisecond, cancel)
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, primerotest.Options{})
			s.SeedCases(500, genCase)
			// A long attempt timeout: only cancellation can end the hang.
			c := newClient(t, s, func(cfg *primero.Config) { cfg.Timeout = time.Minute })
			ctx, cancel := context.WithCancel(t.Context())
			t.Cleanup(cancel)

			n, start := 0, time.Now()
			var err error
			for _, e := range c.Cases(ctx, primero.CaseQuery{Per: 100}) {
				if e != nil {
					err = e
					break
				}
				if n++; n == 150 {
					tt.cancelAt(s, cancel)
				}
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled in the chain", err)
			}
			if n != 200 {
				t.Errorf("yielded %d cases, want the 200 of the first two pages", n)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("returned after %v; cancellation must end the walk promptly", d)
			}
			if got := s.Requests(primerotest.PatternListCases); got != tt.requests {
				t.Errorf("list requests = %d, want %d (no retry after cancellation)", got, tt.requests)
			}
		})
	}
}

func TestHangingPeerTimesOut(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	id := s.SeedCase(genCase(1))
	s.Faults().Set(primerotest.PatternGetCase, fault.Rule{HangRate: 1})
	c := newClient(t, s, func(cfg *primero.Config) {
		cfg.Timeout = 100 * time.Millisecond
		cfg.Retry.MaxAttempts = 2
	})

	_, err := c.GetCase(t.Context(), id)
	e := asError(t, err)
	if e.Code != refbridge.ETransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want transient with context.DeadlineExceeded", err)
	}
	if n := s.Requests(primerotest.PatternGetCase); n != 2 {
		t.Errorf("attempts = %d, want 2 (a read is retried)", n)
	}
}

// Which calls are retried in-line, and which are not.
func TestRetryModes(t *testing.T) {
	t.Parallel()
	female, male := filtered(t, refbridge.Case{Sex: "female"}), filtered(t, refbridge.Case{Sex: "male"})
	tests := []struct {
		name     string
		pattern  string
		rule     fault.Rule
		call     func(ctx context.Context, c *primero.Client, caseID string) error
		attempts int
		code     refbridge.ErrorCode
	}{
		{
			name: "read retried on 500", pattern: primerotest.PatternGetCase, rule: fault.Rule{ErrorRate: 1, Statuses: []int{500}},
			call: func(ctx context.Context, c *primero.Client, id string) error {
				_, err := c.GetCase(ctx, id)
				return err
			},
			attempts: 3, code: refbridge.ETransient,
		},
		{
			name: "case create (guarded by its id) retried on 500", pattern: primerotest.PatternCreateCase, rule: fault.Rule{ErrorRate: 1, Statuses: []int{500}},
			call: func(ctx context.Context, c *primero.Client, _ string) error {
				_, err := c.CreateCase(ctx, "", female)
				return err
			},
			attempts: 3, code: refbridge.ETransient,
		},
		{
			name: "absolute patch retried on 502", pattern: primerotest.PatternPatchCase, rule: fault.Rule{ErrorRate: 1, Statuses: []int{502}},
			call: func(ctx context.Context, c *primero.Client, id string) error {
				_, err := c.PatchCase(ctx, id, male)
				return err
			},
			attempts: 3, code: refbridge.ETransient,
		},
		{
			name: "invalid input not retried", pattern: primerotest.PatternPatchCase, rule: fault.Rule{ErrorRate: 1, Statuses: []int{422}},
			call: func(ctx context.Context, c *primero.Client, id string) error {
				_, err := c.PatchCase(ctx, id, male)
				return err
			},
			attempts: 1, code: refbridge.EInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, primerotest.Options{})
			caseID := s.SeedCase(genCase(1))
			s.Faults().Set(tt.pattern, tt.rule)
			c := newClient(t, s, func(cfg *primero.Config) {
				cfg.Timeout = 200 * time.Millisecond
				cfg.Retry.MaxAttempts = 3
			})
			err := tt.call(t.Context(), c, caseID)
			if code := refbridge.ErrorCodeOf(err); code != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if n := s.Requests(tt.pattern); n != tt.attempts {
				t.Errorf("attempts = %d, want %d", n, tt.attempts)
			}
		})
	}
}

// loseFirstResponse delivers the first matching request to the server but
// reports a broken connection to the client, as when a link drops after
// Primero has created the case.
type loseFirstResponse struct {
	method, path string
	mu           sync.Mutex
	lost         bool
}

func (l *loseFirstResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || l.lost || r.Method != l.method || r.URL.Path != l.path {
		return resp, err
	}
	l.lost = true
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, io.ErrUnexpectedEOF
}

func TestCreateCaseWithClientID(t *testing.T) {
	t.Parallel()
	t.Run("204 with a generated id", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, primerotest.Options{})
		c := newClient(t, s, nil)
		id, err := c.CreateCase(t.Context(), "", filtered(t, refbridge.Case{UNHCRIndividualNo: "TST-00000001", Sex: "female"}))
		if err != nil {
			t.Fatalf("CreateCase: %v", err)
		}
		stored := s.Case(id)
		if stored == nil || stored["unhcr_individual_no"] != "TST-00000001" {
			t.Fatalf("case %s not stored as sent: %v", id, stored)
		}
		// A second create with the same id: Primero answers 409.
		_, err = c.CreateCase(t.Context(), id, filtered(t, refbridge.Case{Sex: "female"}))
		var exists *primero.CaseExistsError
		if refbridge.ErrorCodeOf(err) != refbridge.EConflict || !errors.As(err, &exists) || exists.ID != id {
			t.Fatalf("duplicate create: got %v, want conflict wrapping CaseExistsError{%s}", err, id)
		}
	})
	t.Run("retried create after a lost 204", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, primerotest.Options{})
		lose := &loseFirstResponse{method: http.MethodPost, path: "/api/v2/cases"}
		c := newClient(t, s, func(cfg *primero.Config) { cfg.Transport = lose })
		const id = "0a0a0a0a-0000-4000-8000-000000000001"
		got, err := c.CreateCase(t.Context(), id, filtered(t, refbridge.Case{Sex: "male"}))
		var exists *primero.CaseExistsError
		if !errors.As(err, &exists) || got != id {
			t.Fatalf("got (%s, %v), want the id and CaseExistsError", got, err)
		}
		if n := s.Requests(primerotest.PatternCreateCase); n != 2 {
			t.Errorf("creates sent = %d, want 2", n)
		}
		if n := len(s.CaseIDs()); n != 1 {
			t.Errorf("cases stored = %d, want 1", n)
		}
	})
	t.Run("invalid ids refused before sending", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, primerotest.Options{})
		c := newClient(t, s, nil)
		for _, tt := range []struct {
			id string
			cs refbridge.Case
		}{
			{id: "0A0A0A0A-0000-4000-8000-000000000001"},
			{id: "not-a-uuid"},
			{cs: refbridge.Case{Services: []refbridge.Service{{UniqueID: "F0F0F0F0-0000-4000-8000-000000000001"}}}},
		} {
			if _, err := c.CreateCase(t.Context(), tt.id, filtered(t, tt.cs)); refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
				t.Errorf("CreateCase(%q, %+v): got %v, want invalid", tt.id, tt.cs, err)
			}
		}
		if n := s.Requests(primerotest.PatternCreateCase); n != 0 {
			t.Errorf("requests sent = %d, want 0", n)
		}
	})
}

func TestGetCase(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	id := s.SeedCase(genCase(3))
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "self_api"}, Password: "self pass", Scope: primerotest.ScopeSelf})
	c := newClient(t, s, nil)
	self := newClient(t, s, func(cfg *primero.Config) { cfg.UserName, cfg.Password = "self_api", "self pass" })

	tests := []struct {
		name   string
		client *primero.Client
		id     string
		code   refbridge.ErrorCode
	}{
		{"found", c, id, ""},
		{"unknown", c, "0b0b0b0b-0000-4000-8000-000000000001", refbridge.ENotFound},
		{"out of scope", self, id, refbridge.EForbidden},
		{"not a uuid", c, "../users", refbridge.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs, err := tt.client.GetCase(t.Context(), tt.id)
			if code := refbridge.ErrorCodeOf(err); code != tt.code {
				t.Fatalf("got %v, want %q", err, tt.code)
			}
			if tt.code == "" && (cs.ID != id || cs.UNHCRIndividualNo != "TST-00000003" || len(cs.Services) != 1) {
				t.Errorf("case = %+v", cs)
			}
		})
	}
}

func TestPatchCaseMergesServices(t *testing.T) {
	t.Parallel()
	const (
		svcA = "f1f1f1f1-0000-4000-8000-000000000001"
		svcB = "f2f2f2f2-0000-4000-8000-000000000002"
		svcC = "f3f3f3f3-0000-4000-8000-000000000003"
	)
	s := newSim(t, primerotest.Options{})
	c := newClient(t, s, nil)
	p := gambella(t)
	// services is a patch of changed service items, as the engine files one.
	services := func(svc ...refbridge.Service) egress.Message[refbridge.Case] {
		return egress.Filter(p, "", refbridge.Case{Services: svc})
	}
	seed := func() string {
		return s.SeedCase(map[string]any{"services_section": []any{
			map[string]any{"unique_id": svcA, "service_type": "shelter", "service_implementing_agency": "UNHCR"},
			map[string]any{"unique_id": svcB, "service_type": "alternative_care", "unhcr_referral_status": "pending"},
		}})
	}
	stored := func(id string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, it := range s.Case(id)["services_section"].([]any) {
			m := it.(map[string]any)
			out[m["unique_id"].(string)] = m
		}
		return out
	}

	t.Run("changed item merged, others kept", func(t *testing.T) {
		t.Parallel()
		id := seed()
		if _, err := c.PatchCase(t.Context(), id, services(refbridge.Service{UniqueID: svcB, UNHCRReferralStatus: "accepted"})); err != nil {
			t.Fatalf("PatchCase: %v", err)
		}
		got := stored(id)
		if len(got) != 2 || got[svcB]["unhcr_referral_status"] != "accepted" || got[svcB]["service_type"] != "alternative_care" ||
			got[svcA]["service_implementing_agency"] != "UNHCR" {
			t.Fatalf("services after merge = %v", got)
		}
	})
	t.Run("new item appended, destroyed item removed", func(t *testing.T) {
		t.Parallel()
		id := seed()
		// Removing an item is a field like any other: it leaves only when
		// the allow-list names it, which Gambella's does not.
		p := gambellaWith(t, "services_section._destroy")
		_, err := c.PatchCase(t.Context(), id, egress.Filter(p, "", refbridge.Case{Services: []refbridge.Service{
			{UniqueID: svcC, ServiceType: "health"},
			{UniqueID: svcA, Destroy: true},
		}}))
		if err != nil {
			t.Fatalf("PatchCase: %v", err)
		}
		got := stored(id)
		if len(got) != 2 || got[svcC]["service_type"] != "health" || got[svcA] != nil || got[svcB] == nil {
			t.Fatalf("services = %v", got)
		}
	})
	t.Run("retried patch does not duplicate", func(t *testing.T) {
		t.Parallel()
		id := seed()
		for range 3 {
			if _, err := c.PatchCase(t.Context(), id, services(refbridge.Service{UniqueID: svcC, ServiceType: "health"})); err != nil {
				t.Fatalf("PatchCase: %v", err)
			}
		}
		if got := stored(id); len(got) != 3 {
			t.Fatalf("services = %d, want 3", len(got))
		}
	})
	t.Run("bad unique_ids refused before sending", func(t *testing.T) {
		t.Parallel()
		// A simulator of its own: the other subtests patch concurrently,
		// and no request may be counted here.
		own := newSim(t, primerotest.Options{})
		id := own.SeedCase(genCase(1))
		oc := newClient(t, own, nil)
		for _, svc := range []refbridge.Service{
			{UniqueID: strings.ToUpper(svcA), ServiceType: "x"},
			{ServiceType: "no id"},
			{UniqueID: "1234", ServiceType: "x"},
		} {
			_, err := oc.PatchCase(t.Context(), id, services(svc))
			if refbridge.ErrorCodeOf(err) != refbridge.EInvalid || len(refbridge.ErrorProblems(err)) != 1 {
				t.Errorf("PatchCase(%+v): got %v, want invalid with a problem", svc, err)
			}
		}
		if n := own.Requests(primerotest.PatternPatchCase); n != 0 {
			t.Errorf("requests sent = %d, want 0", n)
		}
	})
	t.Run("type error decoded from 422", func(t *testing.T) {
		t.Parallel()
		id := seed()
		_, err := c.PatchCase(t.Context(), id, filtered(t, refbridge.Case{Status: "archived"}))
		probs := refbridge.ErrorProblems(err)
		if refbridge.ErrorCodeOf(err) != refbridge.EInvalid || len(probs) != 1 || probs[0].Field != "status" || probs[0].Rule != "invalid" {
			t.Fatalf("got %v %+v, want invalid status", err, probs)
		}
	})
}

func TestMarkSynced(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	id := s.SeedCase(genCase(1))
	c := newClient(t, s, nil)
	if err := c.MarkSynced(t.Context(), id, filtered(t, refbridge.SyncStatus{Synced: true, URL: "https://dtp.example.org/r/1", Status: "sent"})); err != nil {
		t.Fatalf("MarkSynced: %v", err)
	}
	if err := c.MarkSynced(t.Context(), id, filtered(t, refbridge.SyncStatus{Synced: false, Status: "failed"})); err != nil {
		t.Fatalf("MarkSynced: %v", err)
	}
	log := s.SyncLog(id)
	if len(log) != 2 || !log[0].Synced || log[0].URL != "https://dtp.example.org/r/1" || log[0].Status != "sent" ||
		log[1].Synced || log[1].Status != "failed" || log[0].User != bridgeUser {
		t.Fatalf("sync log = %+v", log)
	}
}

func TestListReferrals(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "test_caseworker"}, Password: "cw"})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "unhcr_cw"}, Password: "x"})
	c := newClient(t, s, nil)
	id := s.SeedCase(genCase(1))
	svc := s.Case(id)["services_section"].([]any)[0].(map[string]any)["unique_id"].(string)
	rid, err := s.ReferService(id, svc, "test_caseworker", "unhcr_cw", false)
	if err != nil {
		t.Fatalf("ReferService: %v", err)
	}
	list, err := c.ListReferrals(t.Context(), id)
	if err != nil || len(list) != 1 || list[0].ID != rid || list[0].ServiceRecordID != svc ||
		list[0].Status != refbridge.ReferralInProgress || list[0].TransitionedTo != "unhcr_cw" {
		t.Fatalf("ListReferrals = %+v, %v", list, err)
	}
}

func TestUpdateReferralVerifiesStatus(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "test_caseworker"}, Password: "cw"})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "unhcr_cw"}, Password: "x"})
	c := newClient(t, s, nil)

	type step struct {
		status string
		code   refbridge.ErrorCode // "" = applied
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"accept then done", []step{{"accepted", ""}, {"done", ""}}},
		{"same status again is success", []step{{"accepted", ""}, {"accepted", ""}}},
		{"reject accepted refused", []step{{"accepted", ""}, {"rejected", refbridge.EConflict}}},
		{"done from in_progress refused", []step{{"done", refbridge.EConflict}}},
		{"reject then accept refused", []step{{"rejected", ""}, {"accepted", refbridge.EConflict}}},
		{"revoke is not an update", []step{{"revoked", refbridge.EInvalid}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := s.SeedCase(genCase(2))
			svc := s.Case(id)["services_section"].([]any)[0].(map[string]any)["unique_id"].(string)
			rid, err := s.ReferService(id, svc, "test_caseworker", "unhcr_cw", false)
			if err != nil {
				t.Fatalf("ReferService: %v", err)
			}
			for _, st := range tt.steps {
				before := s.Referrals(id)[0].Status
				ref, err := c.UpdateReferral(t.Context(), id, rid, filtered(t, refbridge.Referral{Status: st.status, RejectedReason: "not_eligible"}))
				if code := refbridge.ErrorCodeOf(err); code != st.code {
					t.Fatalf("%s → %s: got %v, want %q", before, st.status, err, st.code)
				}
				switch st.code {
				case "":
					if ref.Status != st.status || s.Referrals(id)[0].Status != st.status {
						t.Fatalf("status = %s (stored %s), want %s", ref.Status, s.Referrals(id)[0].Status, st.status)
					}
				case refbridge.EConflict:
					msg := err.Error()
					if !strings.Contains(msg, before) || !strings.Contains(msg, st.status) || !strings.Contains(msg, rid) {
						t.Errorf("conflict %q should name the refused transition %s → %s of %s", msg, before, st.status, rid)
					}
				}
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	for i := range 24 {
		s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: fmt.Sprintf("worker_%02d", i), FullName: fmt.Sprintf("Worker %02d", i)}, Password: "x"})
	}
	c := newClient(t, s, nil)
	tests := []struct {
		name  string
		q     primero.UserQuery
		want  int
		pages int
	}{
		{"all, paginated", primero.UserQuery{Per: 10}, 25, 3},
		{"by user name", primero.UserQuery{UserName: "worker_07"}, 1, 1},
		{"unknown user name", primero.UserQuery{UserName: "nobody"}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			users, err := c.ListUsers(t.Context(), tt.q)
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			if len(users) != tt.want {
				t.Fatalf("users = %d, want %d", len(users), tt.want)
			}
			seen := map[string]bool{}
			for _, u := range users {
				if seen[u.UserName] || (tt.q.UserName != "" && u.UserName != tt.q.UserName) {
					t.Fatalf("unexpected or repeated user %s", u.UserName)
				}
				seen[u.UserName] = true
			}
		})
	}
}

// BenchmarkListCases10k lists 10,000 seeded cases through the simulator
// over HTTP: one op is one full walk (10 pages of 1,000).
func BenchmarkListCases10k(b *testing.B) {
	s := newSim(b, primerotest.Options{})
	s.SeedCases(10_000, genCase)
	c := newClient(b, s, func(cfg *primero.Config) { cfg.Sleep = nil })
	q := primero.CaseQuery{Per: primero.MaxPer}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range c.Cases(b.Context(), q) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10_000 {
			b.Fatalf("listed %d cases, want 10000", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/case")
}

// TestUnfilteredBodiesRefused: a body that did not pass the EgressFilter —
// the zero Message, the only one code outside package egress can make — is
// refused with an invalid error naming the filter, and nothing is sent.
func TestUnfilteredBodiesRefused(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	id := s.SeedCase(genCase(1))
	c := newClient(t, s, nil)
	const rid = "0c0c0c0c-0000-4000-8000-000000000001"
	calls := map[string]func(ctx context.Context) error{
		"CreateCase": func(ctx context.Context) error {
			_, err := c.CreateCase(ctx, "", egress.Message[refbridge.Case]{})
			return err
		},
		"PatchCase": func(ctx context.Context) error {
			_, err := c.PatchCase(ctx, id, egress.Message[refbridge.Case]{})
			return err
		},
		"UpdateReferral": func(ctx context.Context) error {
			_, err := c.UpdateReferral(ctx, id, rid, egress.Message[refbridge.Referral]{})
			return err
		},
		"MarkSynced": func(ctx context.Context) error {
			return c.MarkSynced(ctx, id, egress.Message[refbridge.SyncStatus]{})
		},
	}
	for name, call := range calls {
		err := call(t.Context())
		if refbridge.ErrorCodeOf(err) != refbridge.EInvalid || !strings.Contains(fmt.Sprint(err), "egress.Filter") {
			t.Errorf("%s: got %v, want invalid naming egress.Filter", name, err)
		}
	}
	for _, pattern := range []string{primerotest.PatternCreateCase, primerotest.PatternPatchCase, primerotest.PatternPatchReferral} {
		if n := s.Requests(pattern); n != 0 {
			t.Errorf("%s: %d requests sent, want 0", pattern, n)
		}
	}
}

// recordWrites keeps the body of every POST and PATCH the client sends
// but the login (which carries the password), in order.
type recordWrites struct {
	mu     sync.Mutex
	writes []string // "METHOD path body"
}

func (r *recordWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && (req.Method == http.MethodPost || req.Method == http.MethodPatch) && req.URL.Path != "/api/v2/tokens" {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.writes = append(r.writes, req.Method+" "+req.URL.Path+" "+string(b))
		r.mu.Unlock()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recordWrites) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

// TestWriteBodies pins the request bodies byte for byte: the wire format
// is the filtered value in the {"data": …} envelope (for a referral, its
// decision keys), and a field outside the allow-list does not leave.
func TestWriteBodies(t *testing.T) {
	t.Parallel()
	s := newSim(t, primerotest.Options{})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "test_caseworker"}, Password: "cw"})
	s.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "unhcr_cw"}, Password: "x"})
	rec := &recordWrites{}
	c := newClient(t, s, func(cfg *primero.Config) { cfg.Transport = rec })

	const (
		newID = "0d0d0d0d-0000-4000-8000-000000000001"
		svcID = "f4f4f4f4-0000-4000-8000-000000000004"
	)
	// risk_level, service_provider and rejection_note are not in
	// Gambella's allow-lists.
	if _, err := c.CreateCase(t.Context(), newID, filtered(t, refbridge.Case{UNHCRIndividualNo: "TST-00000009", Sex: "female", RiskLevel: "high",
		Services: []refbridge.Service{{UniqueID: svcID, ServiceType: "shelter", ServiceProvider: "Test provider"}}})); err != nil {
		t.Fatalf("CreateCase: %v", err)
	}
	if _, err := c.PatchCase(t.Context(), newID, filtered(t, refbridge.Case{NameFirst: "Sample", RiskLevel: "high"})); err != nil {
		t.Fatalf("PatchCase: %v", err)
	}
	if err := c.MarkSynced(t.Context(), newID, filtered(t, refbridge.SyncStatus{Synced: true, URL: "https://dtp.example.org/r/1", Status: "sent"})); err != nil {
		t.Fatalf("MarkSynced: %v", err)
	}
	id := s.SeedCase(genCase(4))
	svc := s.Case(id)["services_section"].([]any)[0].(map[string]any)["unique_id"].(string)
	rid, err := s.ReferService(id, svc, "test_caseworker", "unhcr_cw", false)
	if err != nil {
		t.Fatalf("ReferService: %v", err)
	}
	if _, err := c.UpdateReferral(t.Context(), id, rid, filtered(t, refbridge.Referral{Status: refbridge.ReferralRejected, RejectedReason: "not_eligible", RejectionNote: "Synthetic note"})); err != nil {
		t.Fatalf("UpdateReferral: %v", err)
	}

	want := []string{
		`POST /api/v2/cases {"data":{"id":"` + newID + `","sex":"female","unhcr_individual_no":"TST-00000009","services_section":[{"unique_id":"` + svcID + `","service_type":"shelter"}]}}`,
		`PATCH /api/v2/cases/` + newID + ` {"data":{"name_first":"Sample"}}`,
		`PATCH /api/v2/cases/` + newID + ` {"data":{"mark_synced":true,"mark_synced_url":"https://dtp.example.org/r/1","mark_synced_status":"sent"}}`,
		`PATCH /api/v2/cases/` + id + `/referrals/` + rid + ` {"data":{"status":"rejected","rejected_reason":"not_eligible"}}`,
	}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Errorf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCasesByLastUpdatedMissNoneUpdatedMidWalk: a walk in last_updated_at
// order (the poll's) while cases it has read are updated, which moves them
// to its end. Page numbers alone would then skip as many cases as moved;
// the walk goes on from the last second it read instead, and yields every
// case, and the updated ones again with their new content.
func TestCasesByLastUpdatedMissNoneUpdatedMidWalk(t *testing.T) {
	t.Parallel()
	var tick atomic.Int64
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	// Every write one second after the previous: Primero filters whole seconds.
	s := newSim(t, primerotest.Options{Now: func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Second) }})
	original := s.SeedCases(300, genCase)
	c := newClient(t, s, nil)
	q := primero.CaseQuery{Per: 50, OrderBy: "last_updated_at", Order: "asc", UpdatedFrom: start}
	seen := map[string]int{}
	var updated []string
	for cs, err := range c.Cases(t.Context(), q) {
		if err != nil {
			t.Fatalf("Cases: %v", err)
		}
		seen[cs.ID]++
		if n := len(seen); n == 50 && len(updated) == 0 {
			for _, id := range original[10:20] { // read already: they move to the end
				if err := s.PatchCase(id, bridgeUser, map[string]any{"sex": "male"}); err != nil {
					t.Fatal(err)
				}
				updated = append(updated, id)
			}
		}
	}
	for _, id := range original {
		if seen[id] == 0 {
			t.Errorf("case %s was never yielded", id)
		}
	}
	for _, id := range updated {
		if seen[id] != 2 {
			t.Errorf("updated case %s yielded %d times, want twice (before and after its update)", id, seen[id])
		}
	}
}
