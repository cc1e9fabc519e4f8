package primerotest

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
)

func TestListPagination(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{MaxPer: 30})
	s.SeedCases(45, func(i int) map[string]any { return map[string]any{"tag": fmt.Sprintf("c%02d", i)} })
	tests := []struct {
		query                 string
		wantN, wantPer, wantP int
		wantFirst             string
	}{
		{"", 20, 20, 1, "c44"}, // created_at desc by default
		{"?page=3", 5, 20, 3, "c04"},
		{"?per=10&page=2", 10, 10, 2, "c34"},
		{"?per_page=5", 20, 20, 1, "c44"}, // per_page is ignored
		{"?per=500", 30, 30, 1, "c44"},    // capped at MaxPer
		{"?per=0&page=0", 20, 20, 1, "c44"},
		{"?page=9", 0, 20, 9, ""},
		{"?order=asc", 20, 20, 1, "c00"},
		{"?order_by=tag&order=asc&per=3", 3, 3, 1, "c00"},
		{"?order_by=tag&per=3", 3, 3, 1, "c44"},
		{"?order_by=last_updated_at&order=desc&per=1", 1, 1, 1, "c44"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := request(t, s, http.MethodGet, "/api/v2/cases"+tc.query, uBridge, nil)
			mustStatus(t, r, http.StatusOK)
			items := r.list(t)
			meta := r.obj(t)["metadata"].(map[string]any)
			want := map[string]any{"total": float64(45), "per": float64(tc.wantPer), "page": float64(tc.wantP)}
			if !reflect.DeepEqual(meta, want) {
				t.Errorf("metadata %v, want %v", meta, want)
			}
			if len(items) != tc.wantN {
				t.Fatalf("%d items, want %d", len(items), tc.wantN)
			}
			if tc.wantN > 0 && items[0]["tag"] != tc.wantFirst {
				t.Errorf("first %v, want %s", items[0]["tag"], tc.wantFirst)
			}
			for _, it := range items {
				for _, k := range []string{"id", "enabled", "last_updated_at"} {
					if _, ok := it[k]; !ok {
						t.Fatalf("item lacks %s", k)
					}
				}
			}
		})
	}
}

// TestListPagesCoverAll pages through with a cursor-like order and checks
// that every case is seen exactly once.
func TestListPagesCoverAll(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	ids := s.SeedCases(2500, nil)
	seen := map[string]bool{}
	for page := 1; ; page++ {
		r := request(t, s, http.MethodGet, fmt.Sprintf("/api/v2/cases?per=1000&page=%d&order_by=last_updated_at&order=asc", page), uBridge, nil)
		items := r.list(t)
		for _, it := range items {
			id := it["id"].(string)
			if seen[id] {
				t.Fatalf("%s seen twice", id)
			}
			seen[id] = true
		}
		if len(items) < 1000 {
			break
		}
	}
	if len(seen) != len(ids) {
		t.Errorf("saw %d of %d", len(seen), len(ids))
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	for _, c := range []map[string]any{
		{"tag": "c1", "sex": "female", "age": 10, "status": "open", "consent_for_services": true,
			"unhcr_individual_no": "123-456", "owned_by": uCW1, "risk_level": "high", "date_of_birth": "2014-03-15",
			"created_at": "2024-01-10T10:00:00.000Z", "last_updated_at": "2024-01-10T10:00:00.000Z"},
		{"tag": "c2", "sex": "male", "age": 15, "status": "closed", "consent_for_services": false,
			"unhcr_individual_no": "999", "owned_by": uCW2, "risk_level": "High", "date_of_birth": "2010-01-01",
			"created_at": "2024-01-20T08:00:00.000Z", "last_updated_at": "2024-01-20T08:00:00.500Z"},
		{"tag": "c3", "sex": "female", "age": 7, "status": "open", "language": []any{"en", "fr"},
			"owned_by": uBridge, "assigned_user_names": []any{uCW2},
			"created_at": "2024-02-01T12:00:00.000Z", "last_updated_at": "2024-02-01T12:00:00.000Z"},
	} {
		s.SeedCase(c)
	}
	all := []string{"c1", "c2", "c3"}
	tests := []struct {
		name, user, query string
		want              []string
	}{
		{"exact string", uBridge, "sex=female", []string{"c1", "c3"}},
		{"case-sensitive", uBridge, "sex=Female", []string{}},
		{"any of", uBridge, "status=open,closed", all},
		{"integer", uBridge, "age=10", []string{"c1"}},
		{"integer range", uBridge, "age=7..10", []string{"c1", "c3"}},
		{"open-ended range", uBridge, "age=10..", []string{"c1", "c2"}},
		{"boolean", uBridge, "consent_for_services=true", []string{"c1"}},
		{"boolean false", uBridge, "consent_for_services=false", []string{"c2"}},
		{"datetime range", uBridge, "created_at=2024-01-15T00:00:00Z..2024-02-01T12:00:00Z", []string{"c2", "c3"}},
		{"datetime range excludes later instant", uBridge, "created_at=2024-01-15T00:00:00Z..2024-02-01T11:59:59Z", []string{"c2"}},
		{"date range is whole days", uBridge, "created_at=2024-01-10..2024-01-20", []string{"c1", "c2"}},
		{"same-day range", uBridge, "created_at=2024-01-10..2024-01-10", []string{"c1"}},
		{"date field range", uBridge, "date_of_birth=2014-01-01..2014-12-31", []string{"c1"}},
		{"from only", uBridge, "created_at=2024-01-20..", []string{"c2", "c3"}},
		{"to only is dropped", uBridge, "created_at=..2024-01-15", all},
		{"seconds bound vs milliseconds", uBridge, "last_updated_at=2024-01-20T08:00:00Z..2024-01-20T08:00:00Z", []string{}},
		{"milliseconds cursor", uBridge, "last_updated_at=2024-01-20T08:00:00.500Z..", []string{"c2", "c3"}},
		{"id field exact", uBridge, "unhcr_individual_no=123-456", []string{"c1"}},
		{"id field takes no list", uBridge, "unhcr_individual_no=123-456,999", []string{}},
		{"array overlap", uBridge, "associated_user_names=cw2", []string{"c2", "c3"}},
		{"array overlap any of", uBridge, "associated_user_names=cw1,bridge", []string{"c1", "c3"}},
		{"indexed form", uBridge, "associated_user_names[0]=cw1&associated_user_names[1]=bridge", []string{"c1", "c3"}},
		{"bracket form", uBridge, "associated_user_names[]=cw1", []string{"c1"}},
		{"multi-select overlap", uBridge, "language=fr", []string{"c3"}},
		{"readable form field", uBridge, "risk_level=high", []string{"c1"}},
		{"unknown param ignored", uBridge, "bogus=1", all},
		{"remote ignored", uBridge, "remote=true", all},
		{"not-readable field ignored", uReader, "risk_level=high", all},
		{"permitted field for restricted reader", uReader, "status=closed", []string{"c2"}},
		{"or[] not modelled, ignored", uBridge, "or[sex]=male", all},
		{"query searches id fields", uBridge, "query=23-45", []string{"c1"}},
		{"AND of filters", uBridge, "sex=female&age=7..8", []string{"c3"}},
		{"self scope", uCW1, "", []string{"c1"}},
		{"self scope via assignment", uCW2, "", []string{"c2", "c3"}},
		{"group scope", uGroup, "", []string{"c1"}},
		{"agency scope", uAgency, "", []string{"c1", "c3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			r := request(t, s, http.MethodGet, "/api/v2/cases?"+q.Encode(), tc.user, nil)
			mustStatus(t, r, http.StatusOK)
			if got := tags(r.list(t)); !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
			}
			if total := r.obj(t)["metadata"].(map[string]any)["total"]; total != float64(len(tc.want)) {
				t.Errorf("total %v", total)
			}
		})
	}
}

func TestListReadableFields(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	s.SeedCase(map[string]any{"tag": "c1", "sex": "female", "name_first": "Testchild", "name_last": "Hidden", "age": 3})
	r := request(t, s, http.MethodGet, "/api/v2/cases", uReader, nil)
	items := r.list(t)
	if len(items) != 1 {
		t.Fatalf("items %v", items)
	}
	if got, want := keys(items[0]), []string{"enabled", "id", "last_updated_at", "name_first", "sex", "tag"}; !slices.Equal(got, want) {
		t.Errorf("reader sees %v, want %v", got, want)
	}
	r = request(t, s, http.MethodGet, "/api/v2/cases?fields=sex,age", uBridge, nil)
	if got, want := keys(r.list(t)[0]), []string{"age", "enabled", "id", "last_updated_at", "sex"}; !slices.Equal(got, want) {
		t.Errorf("fields=sex,age gives %v, want %v", got, want)
	}
}

func TestHiddenName(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := s.SeedCase(map[string]any{"name": "Testchild Fixture", "hidden_name": true})
	if d := request(t, s, http.MethodGet, "/api/v2/cases/"+id, uBridge, nil).data(t); d["name"] != "*******" {
		t.Errorf("name %v", d["name"])
	}
}
