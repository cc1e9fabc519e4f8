package primerotest

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"testing"

	"refbridge"
)

func TestListUsers(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{})
	raw, err := os.ReadFile("testdata/primero-users.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct{ Data []refbridge.User }
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	for _, u := range fx.Data {
		s.AddUser(UserSpec{User: u, Password: password(u.UserName)})
	}
	s.AddUser(UserSpec{User: refbridge.User{UserName: "old", FullName: "Old Account", AgencyID: 2, Disabled: ptr(true)}})

	tests := []struct {
		query          string
		want           []string
		total, enabled float64
		per, page      float64
	}{
		{"", []string{"old", "test_admin", "test_caseworker", "unhcr_cw"}, 4, 3, 20, 1}, // by full_name
		{"?user_name=unhcr_cw", []string{"unhcr_cw"}, 1, 1, 20, 1},
		{"?agency[]=2", []string{"old"}, 1, 0, 20, 1},
		{"?agency=1", []string{"test_admin", "test_caseworker", "unhcr_cw"}, 3, 3, 20, 1},
		{"?disabled[]=false", []string{"test_admin", "test_caseworker", "unhcr_cw"}, 3, 3, 20, 1},
		{"?per=2&page=2", []string{"test_caseworker", "unhcr_cw"}, 4, 3, 2, 2},
		{"?per=100000&page=1", []string{"old", "test_admin", "test_caseworker", "unhcr_cw"}, 4, 3, 100000, 1},
		{"?role_id[]=x", []string{"old", "test_admin", "test_caseworker", "unhcr_cw"}, 4, 3, 20, 1},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := request(t, s, http.MethodGet, "/api/v2/users"+tc.query, "test_admin", nil)
			mustStatus(t, r, http.StatusOK)
			var names []string
			for _, u := range r.list(t) {
				names = append(names, u["user_name"].(string))
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("users %v, want %v", names, tc.want)
			}
			meta := r.obj(t)["metadata"].(map[string]any)
			want := map[string]any{"total": tc.total, "total_enabled": tc.enabled, "per": tc.per, "page": tc.page}
			if !reflect.DeepEqual(meta, want) {
				t.Errorf("metadata %v, want %v", meta, want)
			}
		})
	}

	r := request(t, s, http.MethodGet, "/api/v2/users?user_name=test_caseworker", "test_admin", nil)
	u := r.list(t)[0]
	if v, ok := u["phone"]; !ok || v != nil {
		t.Errorf("phone must be present and null: %v", u)
	}
	if u["disabled"] != false || u["id"] != float64(101) || u["agency_id"] != float64(1) ||
		u["created_at"] != "2024-01-01T00:00:00.000Z" || u["organization"] != nil {
		t.Errorf("user %v", u)
	}
	if _, ok := u["password"]; ok {
		t.Error("password leaked")
	}
}

func TestReferTo(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	r := request(t, s, http.MethodGet, "/api/v2/users/refer-to?record_type=case&agency=UNHCR", uCW1, nil)
	mustStatus(t, r, http.StatusOK)
	items := r.list(t)
	if len(items) != 1 || items[0]["user_name"] != uUNHCR || items[0]["agency"] != "UNHCR" {
		t.Errorf("refer-to %v", items)
	}
	r = request(t, s, http.MethodGet, "/api/v2/users/refer-to?record_type=case", uCW1, nil)
	for _, it := range r.list(t) {
		if it["user_name"] == uCW1 || it["user_name"] == uDisabled {
			t.Errorf("refer-to lists %v", it["user_name"])
		}
	}
}
