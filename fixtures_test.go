package refbridge_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"refbridge"
)

// envelope is the {"data": …} wrapper of every Primero body.
type envelope[T any] struct {
	Data T `json:"data"`
}

// TestFixturesRoundTrip decodes every synthetic message into the domain types
// and encodes it again: nothing a flow uses may be lost or changed. The only
// keys allowed to drop are listed per fixture; no flow reads them.
func TestFixturesRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		decode func([]byte) (any, error)
		unused []string // keys no flow reads, which the domain does not keep
	}{
		{"dtp-interventions-inbound.json", roundTrip[refbridge.InterventionBatch], nil},
		{"dtp-decision-inbound.json", roundTrip[refbridge.DecisionBatch], nil},
		{"dtp-callback-success.json", roundTrip[refbridge.InterventionStatus], nil},
		{"dtp-callback-failure.json", roundTrip[refbridge.InterventionStatus], nil},
		{"dtp-decision-outgoing.json", roundTrip[refbridge.InterventionStatus], nil},
		{"dtp-outbound-referral.json", roundTrip[refbridge.DTPReferral], nil},
		{"primero-case-from-dtp.json", roundTrip[envelope[refbridge.Case]], nil},
		{"primero-case.json", roundTrip[envelope[[]refbridge.Case]], []string{"notes_section", "reopened_logs", "flag_count", "alert_count"}},
		{"primero-referrals.json", roundTrip[envelope[[]refbridge.Referral]], nil},
		{"primero-referral-patch.json", roundTrip[envelope[refbridge.Referral]], nil},
		{"primero-users.json", roundTrip[envelope[[]refbridge.User]], nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", "fixtures", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			got, err := tt.decode(raw)
			if err != nil {
				t.Fatalf("decode into domain type: %v", err)
			}
			dropKeys(want, tt.unused)
			if diffs := diffJSON("$", want, got); len(diffs) > 0 {
				for _, d := range diffs {
					t.Error(d)
				}
			}
		})
	}
}

// roundTrip decodes raw into T (rejecting unknown fields where T declares
// every key of the message) and returns T re-encoded as generic JSON.
func roundTrip[T any](raw []byte) (any, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var g any
	err = json.Unmarshal(out, &g)
	return g, err
}

// dropKeys removes keys from every object in v, recursively.
func dropKeys(v any, keys []string) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range keys {
			delete(x, k)
		}
		for _, c := range x {
			dropKeys(c, keys)
		}
	case []any:
		for _, c := range x {
			dropKeys(c, keys)
		}
	}
}

// diffJSON lists the differences between two generic JSON values. Timestamps
// compare as instants, since Primero writes milliseconds that Go omits.
func diffJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{path + ": object became " + reflect.TypeOf(got).String()}
		}
		var out []string
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				out = append(out, path+"."+k+": lost")
				continue
			}
			out = append(out, diffJSON(path+"."+k, w[k], gv)...)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				out = append(out, path+"."+k+": added")
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{path + ": array changed length or type"}
		}
		var out []string
		for i := range w {
			out = append(out, diffJSON(path+"["+strconv.Itoa(i)+"]", w[i], g[i])...)
		}
		return out
	case string:
		if g, ok := got.(string); ok && g != w {
			tw, e1 := time.Parse(time.RFC3339Nano, w)
			tg, e2 := time.Parse(time.RFC3339Nano, g)
			if e1 == nil && e2 == nil && tw.Equal(tg) {
				return nil
			}
		}
	}
	if !reflect.DeepEqual(want, got) {
		return []string{path + ": value changed"}
	}
	return nil
}

func TestFlexBool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		value bool
		bad   bool
	}{
		{`true`, true, false}, {`false`, false, false}, {`"true"`, true, false}, {`"false"`, false, false},
		{`"yes"`, false, true}, {`1`, false, true},
	}
	for _, tt := range tests {
		var b refbridge.FlexBool
		err := json.Unmarshal([]byte(tt.in), &b)
		if (err != nil) != tt.bad {
			t.Fatalf("%s: err = %v, want error %v", tt.in, err, tt.bad)
		}
		if tt.bad {
			continue
		}
		out, _ := json.Marshal(b)
		if b.Value != tt.value || string(out) != tt.in {
			t.Errorf("%s: value %v, re-encoded %s", tt.in, b.Value, out)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	base := &refbridge.Error{Code: refbridge.ERateLimited, RetryAfter: 3 * time.Second, Problems: []refbridge.Problem{{Field: "f", Rule: "required"}}}
	wrapped := fmtWrap(base)
	if refbridge.ErrorCodeOf(wrapped) != refbridge.ERateLimited || refbridge.ErrorRetryAfter(wrapped) != 3*time.Second ||
		len(refbridge.ErrorProblems(wrapped)) != 1 || !refbridge.IsRetryable(wrapped) {
		t.Fatalf("wrapped application error lost its classification: %v", wrapped)
	}
	if refbridge.ErrorCodeOf(nil) != "" || refbridge.ErrorCodeOf(os.ErrNotExist) != refbridge.EInternal || refbridge.IsRetryable(os.ErrNotExist) {
		t.Fatal("nil or foreign errors misclassified")
	}
}

func fmtWrap(err error) error { return &wrapErr{err} }

type wrapErr struct{ err error }

func (w *wrapErr) Error() string { return "context: " + w.err.Error() }
func (w *wrapErr) Unwrap() error { return w.err }

func TestRetryPolicyBackoffBounded(t *testing.T) {
	t.Parallel()
	p := refbridge.RetryPolicy{MaxAttempts: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n := 1; n < 12; n++ {
		ceiling := min(time.Second, 100*time.Millisecond<<(n-1))
		for range 50 {
			if d := p.Backoff(n); d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", n, d, ceiling)
			}
		}
	}
}
