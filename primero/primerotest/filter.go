package primerotest

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Filters on GET /api/v2/cases, as SearchFilterService and
// DestringifyService build them (contract §2). A param becomes a filter only
// when it names a field the caller may filter on; every other param is
// silently ignored, which is the behaviour a client must be tested against.

// filter is one field condition; conditions are ANDed.
type filter struct {
	field  string
	exact  []string // ID fields: exact strings, any of
	values []any    // any of (bool, int or string)
	rng    *valueRange
}

type valueRange struct {
	numeric    bool
	fromN, toN int
	fromT, toT time.Time
	hasTo      bool
}

// reservedParam reports params that are never filters.
func reservedParam(name string) bool {
	switch name {
	case "page", "per", "per_page", "order_by", "order", "fields", "query", "id_search",
		"locale", "record_action", "format", "controller", "action":
		return true
	}
	return false
}

// filterable reports whether u may filter on field: ID fields and the
// permitted record fields always, any other field only if u can read it and
// it exists in the configuration (a field some case has, or one the
// simulator knows the type of). Callers hold s.mu.
func (s *Sim) filterable(u *user, field string) bool {
	if idField(field) || permittedFilter(field) {
		return true
	}
	if !u.canRead(field) || managedField(field) {
		return false
	}
	if k, _ := caseFieldKind(field); k != kAny {
		return true
	}
	_, ok := s.fieldNames[field]
	return ok
}

// parseFilters turns query params into filters. Callers hold s.mu.
func (s *Sim) parseFilters(q url.Values, u *user) []filter {
	listed := map[string][]string{}
	plain := map[string]string{}
	for key, vals := range q {
		base, bracket := key, false
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			inner := key[i+1 : len(key)-1]
			if inner != "" && !allDigits(inner) {
				continue // or[..], not[..] and friends are not modelled
			}
			base, bracket = key[:i], true
		}
		if len(vals) == 0 || reservedParam(base) || !s.filterable(u, base) {
			continue
		}
		if bracket {
			listed[base] = append(listed[base], vals...)
		} else {
			plain[base] = vals[len(vals)-1] // Rails keeps the last
		}
	}
	var out []filter
	for field, vals := range listed {
		sort.Strings(vals)
		f := filter{field: field}
		if idField(field) {
			f.exact = vals
		} else {
			for _, v := range vals {
				f.values = append(f.values, destringify(v))
			}
		}
		out = append(out, f)
	}
	for field, v := range plain {
		if _, dup := listed[field]; dup {
			continue
		}
		if idField(field) {
			out = append(out, filter{field: field, exact: []string{v}})
			continue
		}
		if f, ok := parseValue(field, v); ok {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b filter) int { return cmp.Compare(a.field, b.field) })
	return out
}

// parseValue parses one plain filter value; ok is false when the filter is
// dropped (an open-start range "..B").
func parseValue(field, v string) (filter, bool) {
	f := filter{field: field}
	if from, to, isRange := strings.Cut(v, ".."); isRange {
		if from == "" {
			return f, false // date_range.rb: no from, no filter
		}
		if r, ok := parseRange(from, to); ok {
			f.rng = r
		} else {
			f.values = []any{v} // not a range Primero understands: an exact string
		}
		return f, true
	}
	for _, part := range strings.Split(v, ",") {
		f.values = append(f.values, destringify(part))
	}
	return f, true
}

func parseRange(from, to string) (*valueRange, bool) {
	if allDigits(from) && (to == "" || allDigits(to)) {
		r := &valueRange{numeric: true, hasTo: to != ""}
		var err error
		if r.fromN, err = strconv.Atoi(from); err != nil {
			return nil, false
		}
		if r.hasTo {
			if r.toN, err = strconv.Atoi(to); err != nil {
				return nil, false
			}
		}
		return r, true
	}
	r := &valueRange{hasTo: to != ""}
	var ok bool
	if r.fromT, ok = parseBound(from, false); !ok {
		return nil, false
	}
	if r.hasTo {
		if r.toT, ok = parseBound(to, true); !ok {
			return nil, false
		}
	}
	return r, true
}

// parseBound parses a range end. A bare date covers the whole day, so as
// an upper bound it means the last instant of that day.
func parseBound(s string, upper bool) (time.Time, bool) {
	if len(s) == len("2006-01-02") {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return time.Time{}, false
		}
		if upper {
			t = t.Add(24*time.Hour - time.Nanosecond)
		}
		return t, true
	}
	// Date-times must carry seconds; fractions and zones are optional.
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// destringify converts a filter value as DestringifyService does.
func destringify(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if allDigits(v) {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return v
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (f *filter) match(rec *record) bool {
	v := rec.data[f.field]
	switch {
	case f.exact != nil:
		if v == nil {
			return false
		}
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		return slices.Contains(f.exact, s)
	case f.rng != nil:
		if !f.rng.numeric {
			switch f.field {
			case "created_at":
				return f.rng.matchTime(rec.createdAt)
			case "last_updated_at":
				return f.rng.matchTime(rec.updatedAt)
			}
		}
		if list, ok := v.([]any); ok {
			return slices.ContainsFunc(list, f.rng.match)
		}
		return f.rng.match(v)
	default:
		if list, ok := v.([]any); ok { // array fields match on overlap
			for _, e := range list {
				if slices.ContainsFunc(f.values, func(want any) bool { return valueEq(e, want) }) {
					return true
				}
			}
			return false
		}
		return slices.ContainsFunc(f.values, func(want any) bool { return valueEq(v, want) })
	}
}

func (r *valueRange) match(v any) bool {
	if r.numeric {
		var n float64
		switch x := v.(type) {
		case int:
			n = float64(x)
		case float64:
			n = x
		default:
			return false
		}
		return n >= float64(r.fromN) && (!r.hasTo || n <= float64(r.toN))
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	t, ok := parseTime(s)
	return ok && r.matchTime(t)
}

func (r *valueRange) matchTime(t time.Time) bool {
	if t.IsZero() || t.Before(r.fromT) {
		return false
	}
	return !r.hasTo || !t.After(r.toT)
}

// valueEq compares a stored value with a destringified filter value; types
// must agree, as jsonb containment requires.
func valueEq(stored, want any) bool {
	switch w := want.(type) {
	case bool:
		b, ok := stored.(bool)
		return ok && b == w
	case int:
		switch n := stored.(type) {
		case int:
			return n == w
		case float64:
			return n == float64(w)
		}
		return false
	case string:
		s, ok := stored.(string)
		return ok && s == w
	}
	return false
}

// matchQuery is the `query` param: a case-insensitive substring search over
// the ID fields.
func matchQuery(rec *record, q string) bool {
	q = strings.ToLower(q)
	for _, f := range []string{"case_id", "case_id_display", "short_id", "unique_identifier", "unhcr_id_no",
		"unhcr_individual_no", "national_id_no", "other_agency_id", "cpims_id"} {
		if s, ok := rec.data[f].(string); ok && strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// sorted returns every record ordered by orderBy, cached until the next
// write so that paging through many pages sorts once. Callers hold s.mu and
// must not modify the slice.
func (s *Sim) sorted(orderBy string, desc bool) []*record {
	if s.sortVer != s.version {
		clear(s.sortCache)
		s.sortVer = s.version
	}
	key := orderBy + "|" + strconv.FormatBool(desc)
	if out, ok := s.sortCache[key]; ok {
		return out
	}
	out := slices.Clone(s.all)
	var keyCmp func(a, b *record) int
	switch orderBy {
	case "created_at":
		keyCmp = func(a, b *record) int { return a.createdAt.Compare(b.createdAt) }
	case "last_updated_at":
		keyCmp = func(a, b *record) int { return a.updatedAt.Compare(b.updatedAt) }
	case "id":
		keyCmp = func(a, b *record) int { return cmp.Compare(a.id, b.id) }
	default:
		keyCmp = func(a, b *record) int { return compareValues(a.data[orderBy], b.data[orderBy]) }
	}
	slices.SortFunc(out, func(a, b *record) int {
		c := keyCmp(a, b)
		if c == 0 {
			c = cmp.Compare(a.seq, b.seq)
		}
		if desc {
			return -c
		}
		return c
	})
	s.sortCache[key] = out
	return out
}

// compareValues orders jsonb values for order_by: numbers, then strings,
// then booleans, then anything else; missing values sort as SQL NULLs do
// (last ascending, first descending).
func compareValues(a, b any) int {
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case int:
		return cmp.Compare(float64(x), num(b))
	case float64:
		return cmp.Compare(x, num(b))
	case string:
		return cmp.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	return 0
}

func rank(v any) int {
	switch v.(type) {
	case int, float64:
		return 0
	case string:
		return 1
	case bool:
		return 2
	case nil:
		return 4
	}
	return 3
}

func num(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return 0
}
