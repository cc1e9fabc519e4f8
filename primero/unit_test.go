package primero

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"refbridge"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	valid := Config{BaseURL: "https://cpims.example.org", UserName: "bridge", Password: "s3cret"}
	tests := []struct {
		name   string
		mutate func(*Config)
		fields []string // problem fields expected; nil = valid
	}{
		{"valid basic", func(*Config) {}, nil},
		{"valid token with path", func(c *Config) { c.Auth = AuthToken; c.BaseURL = "http://127.0.0.1:8080/primero/" }, nil},
		{"no base url", func(c *Config) { c.BaseURL = "" }, []string{"base_url"}},
		{"relative base url", func(c *Config) { c.BaseURL = "cpims.example.org" }, []string{"base_url"}},
		{"ftp base url", func(c *Config) { c.BaseURL = "ftp://cpims.example.org" }, []string{"base_url"}},
		{"base url with query", func(c *Config) { c.BaseURL = "https://cpims.example.org/?x=1" }, []string{"base_url"}},
		{"base url with credentials", func(c *Config) { c.BaseURL = "https://u:p@cpims.example.org" }, []string{"base_url"}},
		{"no user, no password", func(c *Config) { c.UserName, c.Password = "", "" }, []string{"user_name", "password"}},
		{"unknown auth", func(c *Config) { c.Auth = AuthMode(7) }, []string{"auth"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"timeout"}},
		{"negative retry", func(c *Config) { c.Retry.MaxAttempts = -1 }, []string{"retry"}},
		{"negative max response", func(c *Config) { c.MaxResponseBytes = -1 }, []string{"max_response_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.mutate(&cfg)
			c, err := New(cfg)
			if tt.fields == nil {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
				t.Fatalf("New: got %v, want invalid", err)
			}
			var got []string
			for _, p := range refbridge.ErrorProblems(err) {
				got = append(got, p.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("problem fields = %v, want %v", got, tt.fields)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
}

func TestClientURL(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"http://h:1/primero", "http://h:1/primero/"} {
		c, err := New(Config{BaseURL: base, UserName: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		got := c.url("/api/v2/cases", url.Values{"per": {"2"}})
		if want := "http://h:1/primero/api/v2/cases?per=2"; got != want {
			t.Errorf("url(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestDecodeError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		problems []refbridge.Problem // Field and Rule only
		message  string
	}{
		{
			name:     "schema pointers",
			status:   422,
			body:     `{"errors":[{"status":422,"resource":"/api/v2/cases","message":"Invalid Record JSON","detail":["/age","/services_section/0/unique_id"]}]}`,
			problems: []refbridge.Problem{{Field: "age", Rule: "invalid"}, {Field: "services_section.0.unique_id", Rule: "invalid"}},
		},
		{
			name:     "consent refusal",
			status:   422,
			body:     `{"errors":[{"status":422,"resource":"/api/v2/cases/9e9e9e9e-0000-4000-8000-000000000001/referrals","message":"transition.errors.consent","detail":"consent"}]}`,
			problems: []refbridge.Problem{{Field: "consent", Rule: "consent_missing"}},
		},
		{
			name:     "recipient cannot receive",
			status:   422,
			body:     `{"errors":[{"status":422,"message":"transition.errors.to_user_can_receive","detail":"transitioned_to"}]}`,
			problems: []refbridge.Problem{{Field: "transitioned_to", Rule: "cannot_receive"}},
		},
		{
			name:     "model validation, message array",
			status:   422,
			body:     `{"errors":[{"status":422,"message":["errors.models.child.age"],"detail":"age"}]}`,
			problems: []refbridge.Problem{{Field: "age", Rule: "invalid"}},
		},
		{
			name:     "free text detail is not a field",
			status:   422,
			body:     `{"errors":[{"status":422,"message":"param is missing","detail":"Testchild Fixture born 2014-03-15"}]}`,
			problems: []refbridge.Problem{{Field: "data", Rule: "invalid"}},
		},
		{
			name:     "no envelope",
			status:   422,
			body:     `<html>oops</html>`,
			problems: []refbridge.Problem{{Field: "data", Rule: "invalid"}},
		},
		{name: "conflict", status: 409, body: `{"errors":[{"status":409,"message":"Conflict: A record with this id already exists"}]}`, message: "a record with this id already exists"},
		{name: "devise 401", status: 401, body: `{"error":"Invalid User name or password."}`, message: "credentials or token refused"},
		{name: "404 with exception text", status: 404, body: `{"errors":[{"status":404,"message":"Not Found","detail":"Couldn't find Child with name Testchild"}]}`, message: "not found"},
		{name: "500", status: 500, body: `{"errors":[{"status":500,"message":"Testchild"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := DecodeError(tt.status, http.Header{}, []byte(tt.body))
			if e == nil {
				t.Fatal("DecodeError returned nil")
			}
			if e.Code != "" || e.Status != 0 {
				t.Errorf("Code/Status = %q/%d, want them left to peerhttp", e.Code, e.Status)
			}
			if len(e.Problems) != len(tt.problems) {
				t.Fatalf("problems = %+v, want %+v", e.Problems, tt.problems)
			}
			for i, p := range e.Problems {
				if p.Field != tt.problems[i].Field || p.Rule != tt.problems[i].Rule {
					t.Errorf("problem %d = %s/%s, want %s/%s", i, p.Field, p.Rule, tt.problems[i].Field, tt.problems[i].Rule)
				}
				if p.Detail == "" {
					t.Errorf("problem %d has no detail", i)
				}
			}
			if tt.message != "" && e.Message != tt.message {
				t.Errorf("Message = %q, want %q", e.Message, tt.message)
			}
			// Nothing from the body's free text may reach the error.
			all, _ := json.Marshal(e)
			for _, leak := range []string{"Testchild", "2014-03-15", "Invalid User name", "Couldn't find"} {
				if strings.Contains(string(all), leak) {
					t.Errorf("error carries body text %q: %s", leak, all)
				}
			}
		})
	}
}

func TestCaseQueryParams(t *testing.T) {
	t.Parallel()
	b := time.Date(2024, 1, 31, 23, 59, 59, 0, time.UTC)
	tests := []struct {
		name string
		q    CaseQuery
		want url.Values // before page/per are added
	}{
		{
			name: "defaults: stable order",
			q:    CaseQuery{},
			want: url.Values{"order_by": {"created_at"}, "order": {"asc"}},
		},
		{
			name: "equality on id fields",
			q:    CaseQuery{Equal: map[string]string{"unhcr_individual_no": "123-456", "case_id": "c0c0c0c0-0000-4000-8000-000000000001"}},
			want: url.Values{"unhcr_individual_no": {"123-456"}, "case_id": {"c0c0c0c0-0000-4000-8000-000000000001"}, "order_by": {"created_at"}, "order": {"asc"}},
		},
		{
			name: "upper bound alone gets a 1970 lower bound",
			q:    CaseQuery{UpdatedTo: b},
			want: url.Values{"last_updated_at": {"1970-01-01T00:00:00Z..2024-01-31T23:59:59Z"}, "order_by": {"created_at"}, "order": {"asc"}},
		},
		{
			name: "lower bound alone is open",
			q:    CaseQuery{UpdatedFrom: b},
			want: url.Values{"last_updated_at": {"2024-01-31T23:59:59Z.."}, "order_by": {"created_at"}, "order": {"asc"}},
		},
		{
			name: "sub-second window widened to whole seconds, in UTC",
			q: CaseQuery{
				UpdatedFrom: time.Date(2024, 1, 1, 3, 0, 0, 900e6, time.FixedZone("EAT", 3*3600)),
				UpdatedTo:   time.Date(2024, 1, 1, 3, 0, 5, 100e6, time.FixedZone("EAT", 3*3600)),
			},
			want: url.Values{"last_updated_at": {"2024-01-01T00:00:00Z..2024-01-01T00:00:06Z"}, "order_by": {"created_at"}, "order": {"asc"}},
		},
		{
			name: "associated user and explicit order",
			q:    CaseQuery{AssociatedUser: "unhcr_cw", OrderBy: "last_updated_at", Order: "desc"},
			want: url.Values{"associated_user_names": {"unhcr_cw"}, "order_by": {"last_updated_at"}, "order": {"desc"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := tt.q.listing()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := l.params.Encode(), tt.want.Encode(); got != want {
				t.Errorf("params = %s\nwant     %s", got, want)
			}
			if strings.Contains(l.params.Get("last_updated_at"), "=..") || strings.HasPrefix(l.params.Get("last_updated_at"), "..") {
				t.Errorf("upper-only range %q would be dropped by Primero", l.params.Get("last_updated_at"))
			}
			if l.per != DefaultPer {
				t.Errorf("per = %d, want %d", l.per, DefaultPer)
			}
		})
	}
}

func TestCaseQueryInvalid(t *testing.T) {
	t.Parallel()
	a := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    CaseQuery
	}{
		{"per too large", CaseQuery{Per: MaxPer + 1}},
		{"negative per", CaseQuery{Per: -1}},
		{"list value", CaseQuery{Equal: map[string]string{"sex": "female,male"}}},
		{"range value", CaseQuery{Equal: map[string]string{"age": "1..5"}}},
		{"empty value", CaseQuery{Equal: map[string]string{"status": ""}}},
		{"reserved name", CaseQuery{Equal: map[string]string{"page": "2"}}},
		{"range via Equal", CaseQuery{Equal: map[string]string{"last_updated_at": "x"}}},
		{"not a field name", CaseQuery{Equal: map[string]string{"a&b": "1"}}},
		{"inverted window", CaseQuery{UpdatedFrom: a.Add(time.Hour), UpdatedTo: a}},
		{"bad order", CaseQuery{Order: "random"}},
		{"two associated users", CaseQuery{AssociatedUser: "a,b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.q.listing()
			if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
				t.Fatalf("got %v, want invalid", err)
			}
			if strings.Contains(err.Error(), "female") {
				t.Errorf("error quotes the filter value: %v", err)
			}
		})
	}
}

func TestCaseQueryVerify(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 8, 10, 15, 0, 500e6, time.UTC)
	tests := []struct {
		name   string
		q      CaseQuery
		record string
		field  string // "" = match
	}{
		{"id field equal", CaseQuery{Equal: map[string]string{"unhcr_individual_no": "TST-1"}}, `{"id":"x","unhcr_individual_no":"TST-1"}`, ""},
		{"id field differs", CaseQuery{Equal: map[string]string{"unhcr_individual_no": "TST-1"}}, `{"id":"x","unhcr_individual_no":"TST-2"}`, "unhcr_individual_no"},
		{"field absent (unreadable)", CaseQuery{Equal: map[string]string{"sex": "female"}}, `{"id":"x"}`, "sex"},
		{"field null", CaseQuery{Equal: map[string]string{"sex": "female"}}, `{"id":"x","sex":null}`, "sex"},
		{"boolean", CaseQuery{Equal: map[string]string{"consent_for_services": "true"}}, `{"id":"x","consent_for_services":true}`, ""},
		{"boolean differs", CaseQuery{Equal: map[string]string{"consent_for_services": "true"}}, `{"id":"x","consent_for_services":false}`, "consent_for_services"},
		{"integer", CaseQuery{Equal: map[string]string{"age": "10"}}, `{"id":"x","age":10}`, ""},
		{"array overlap", CaseQuery{Equal: map[string]string{"owned_by_groups": "g2"}}, `{"id":"x","owned_by_groups":["g1","g2"]}`, ""},
		{"array without it", CaseQuery{Equal: map[string]string{"owned_by_groups": "g3"}}, `{"id":"x","owned_by_groups":["g1","g2"]}`, "owned_by_groups"},
		{"associated user", CaseQuery{AssociatedUser: "unhcr_cw"}, `{"id":"x","associated_user_names":["a","unhcr_cw"]}`, ""},
		{"associated user missing", CaseQuery{AssociatedUser: "unhcr_cw"}, `{"id":"x","associated_user_names":["a"]}`, "associated_user_names"},
		{"associated users absent", CaseQuery{AssociatedUser: "unhcr_cw"}, `{"id":"x"}`, "associated_user_names"},
		{"in window (edge widened)", CaseQuery{UpdatedFrom: at.Add(-time.Hour), UpdatedTo: at.Truncate(time.Second)}, `{"id":"x","last_updated_at":"2024-05-08T10:15:00.500Z"}`, ""},
		{"after window", CaseQuery{UpdatedTo: at.Add(-time.Hour)}, `{"id":"x","last_updated_at":"2024-05-08T10:15:00.500Z"}`, "last_updated_at"},
		{"before window", CaseQuery{UpdatedFrom: at.Add(time.Hour)}, `{"id":"x","last_updated_at":"2024-05-08T10:15:00.500Z"}`, "last_updated_at"},
		{"no timestamp", CaseQuery{UpdatedFrom: at}, `{"id":"x"}`, "last_updated_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := tt.q.listing()
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"data":[` + tt.record + `],"metadata":{"total":1,"per":500,"page":1}}`)
			var p page[refbridge.Case]
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			err = l.verify(body, p.Data)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if refbridge.ErrorCodeOf(err) != refbridge.EForbidden || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("verify: got %v, want forbidden naming %s", err, tt.field)
			}
			for _, v := range tt.q.Equal {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error quotes the filter value %q: %v", v, err)
				}
			}
		})
	}
}

func TestUUIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id, err := newUUID()
		if err != nil {
			t.Fatal(err)
		}
		if !isLowerUUID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("newUUID() = %q, not a lowercase v4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("newUUID() repeated %q", id)
		}
		seen[id] = true
	}
	tests := []struct {
		in           string
		uuid, lowerU bool
	}{
		{"f0f0f0f0-0000-4000-8000-0a1b2c3d4e5f", true, true},
		{"F0F0F0F0-0000-4000-8000-0A1B2C3D4E5F", true, false},
		{"f0f0f0f0-0000-4000-8000-0a1b2c3d4e5", false, false},
		{"f0f0f0f0x0000-4000-8000-0a1b2c3d4e5f", false, false},
		{"../../api/v2/users?x=1-aaaa-aaaa-aaaaa", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := isUUID(tt.in); got != tt.uuid {
			t.Errorf("isUUID(%q) = %v", tt.in, got)
		}
		if got := isLowerUUID(tt.in); got != tt.lowerU {
			t.Errorf("isLowerUUID(%q) = %v", tt.in, got)
		}
	}
}
