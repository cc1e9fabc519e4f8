package egress

import (
	"slices"
	"strings"
	"testing"

	"refbridge"
)

// TestCheckFieldsRefusesWhatTheListDoesNotName: the check behind Filter
// names the first field the allow-list refuses, at the top level and in
// service items, and passes fields sent as null.
func TestCheckFieldsRefusesWhatTheListDoesNotName(t *testing.T) {
	t.Parallel()
	allow := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	tests := []struct {
		name    string
		body    string
		subform bool
		allows  func(string) bool
		fields  []string
		refused string // field named in the error; "" for none
	}{
		{"allowed", `{"b":1,"a":"x","c":null}`, false, allow("a", "b"), []string{"a", "b"}, ""},
		{"top-level field refused", `{"a":"x","secret":"y"}`, false, allow("a"), nil, "secret"},
		{"service item field refused", `{"services_section":[{"unique_id":"u","note":"n"}]}`, true,
			allow("services_section.unique_id"), nil, "services_section.note"},
		{"service items allowed", `{"services_section":[{"unique_id":"u","x":null}]}`, true,
			allow("services_section.unique_id"), []string{"services_section"}, ""},
		{"sync status", `{"mark_synced":false,"mark_synced_status":"s","note":"n"}`, false, syncStatusField, nil, "note"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fields, err := checkFields([]byte(tt.body), tt.subform, tt.allows)
			switch {
			case tt.refused == "" && (err != nil || !slices.Equal(fields, tt.fields)):
				t.Errorf("got %v, %v; want %v", fields, err, tt.fields)
			case tt.refused != "" && (refbridge.ErrorCodeOf(err) != refbridge.EInternal || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("got %v, want an internal error naming %s", err, tt.refused)
			}
		})
	}
}
