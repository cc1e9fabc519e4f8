package mapping

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseComments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []comment
		wantErr bool
	}{
		{"", nil, false},
		{"  ", nil, false},
		{`[]`, []comment{}, false},
		{`[{"CreatedBy":"A","Text":"t","CreatedOn":"2024-05-06T08:00:00.0000000Z"}]`, []comment{{"A", "t", "2024-05-06T08:00:00.0000000Z"}}, false},
		{` [ {"Text" : "ሰላም"} , {} ] `, []comment{{Text: "ሰላም"}, {}}, false},
		{`[{"text":"lower-case key","Extra":1,"CreatedBy":null}]`, []comment{{Text: "lower-case key"}}, false},
		{`[{"Text":"esc\"aped\n"}]`, []comment{{Text: "esc\"aped\n"}}, false},
		{`Reason typed as text`, nil, true},
		{`{"Text":"not a list"}`, nil, true},
		{`[{"Text":"a"},]`, nil, true},
		{`[{"Text":1}]`, nil, true},
	}
	for _, tt := range tests {
		got, err := parseComments(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseComments(%q) = %#v, %v; want %#v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzScanComments is a differential test: wherever the fast path accepts a
// comment store, encoding/json must accept it too and agree on every comment.
func FuzzScanComments(f *testing.F) {
	for _, s := range []string{`[]`, `[{"CreatedBy":"A","Text":"t","CreatedOn":"x"}]`, ` [ {"Text" : "ሰላም"} , {} ] `,
		`[{"Text":"a","Text":"b"}]`, "[{\"Text\":\"\xff\"}]", `[{"TEXT":"a"}]`, `[{"Text":"a"}] x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := scanComments(s)
		if !ok {
			return
		}
		var want []comment
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v)", err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast path %#v, encoding/json %#v", fast, want)
		}
	})
}
