package primerotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// record is one stored case. data is Primero's jsonb column: every field,
// including the server-managed ones, except id.
type record struct {
	id        string
	seq       int64 // insertion order; tie-breaker for sorting
	data      map[string]any
	createdAt time.Time // parsed data["created_at"], for sorting and filters
	updatedAt time.Time // parsed data["last_updated_at"]
	// full caches the JSON of the record as a reader of every field sees it;
	// nil after each write. It makes paging through 10,000 cases cheap.
	full []byte
}

func (rec *record) enabled() bool {
	b, ok := rec.data["record_state"].(bool)
	return !ok || b
}

// user is an account plus its authentication state.
type user struct {
	spec        UserSpec
	readable    map[string]bool // nil: all
	writable    map[string]bool // nil: all
	perms       map[string]bool
	failures    int
	lockedUntil time.Time
}

func (u *user) name() string { return u.spec.UserName }

func (u *user) disabled() bool { return u.spec.Disabled != nil && *u.spec.Disabled }

func (u *user) canRead(field string) bool { return u.readable == nil || u.readable[field] }

func (u *user) canWrite(field string) bool { return u.writable == nil || u.writable[field] }

func (u *user) scope() string {
	if u.spec.Scope == "" {
		return ScopeAll
	}
	return u.spec.Scope
}

func setOf(list []string) map[string]bool {
	if list == nil {
		return nil
	}
	m := make(map[string]bool, len(list))
	for _, f := range list {
		m[f] = true
	}
	return m
}

// timeLayout is how Primero serialises timestamps in record data.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// tick returns the timestamp of a new write: the clock, truncated to
// milliseconds, but always at least 1 ms after the previous write, so that
// every write is visible to a last_updated_at cursor even with a frozen clock.
// A clock that was set back (an NTP step) is followed as Rails would: the
// write is stamped with the earlier time, and later writes count up from it.
// Callers hold s.mu.
func (s *Sim) tick() time.Time {
	t := s.now().UTC().Truncate(time.Millisecond)
	back := t.Before(s.lastClock)
	s.lastClock = t
	if !back && !t.After(s.lastWrite) {
		t = s.lastWrite.Add(time.Millisecond)
	}
	s.lastWrite = t
	return t
}

// newUUID returns a lowercase version-4 UUID drawn from the seeded source.
// Callers hold s.mu.
func (s *Sim) newUUID() string {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	a = a&^(0xf<<12) | 0x4<<12 // version 4
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// isLowerUUID reports whether v is a UUID in canonical lowercase form, the
// only form Primero's schema accepts for subform unique_id.
func isLowerUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// normalize converts decoded JSON or Go values handed to the helpers into
// the few types the store holds: map[string]any, []any, string, bool, nil,
// int (integral numbers) and float64. One representation keeps comparison,
// merging and filtering simple and makes Case()["age"] == 10 hold.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int:
		return x
	case float64:
		// Integral numbers are ints whatever their source (JSON decoded
		// without UseNumber, a Go literal), so that stored values compare
		// the same way however a case was seeded.
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int(x)
		}
		return x
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return normalize(f)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = normalize(e)
		}
		return a
	case []string:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = e
		}
		return a
	case []map[string]any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = normalize(e)
		}
		return a
	case int8:
		return int(x)
	case int16:
		return int(x)
	case int32:
		return int(x)
	case int64:
		return int(x)
	case uint:
		return int(x)
	case uint8:
		return int(x)
	case uint16:
		return int(x)
	case uint32:
		return int(x)
	case uint64:
		return int(x)
	case float32:
		return float64(x)
	case time.Time:
		return formatTime(x)
	case *bool:
		if x == nil {
			return nil
		}
		return *x
	case *string:
		if x == nil {
			return nil
		}
		return *x
	case *int:
		if x == nil {
			return nil
		}
		return *x
	default:
		// Structs and other types go through JSON, as they would on the wire.
		b, err := json.Marshal(x)
		if err != nil {
			return nil
		}
		var out any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&out) != nil {
			return nil
		}
		return normalize(out)
	}
}

// deepCopy copies a normalized value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	default:
		return x
	}
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}

// stringList returns the string elements of a list value.
func stringList(v any) []string {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return slices.Clone(x)
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	}
	return nil
}

func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// setTimes keeps the parsed timestamps in step with data.
func (rec *record) setTimes() {
	if t, ok := parseTime(str(rec.data["created_at"])); ok {
		rec.createdAt = t
	}
	if t, ok := parseTime(str(rec.data["last_updated_at"])); ok {
		rec.updatedAt = t
	}
}

// touch marks rec written at t by userName: last_updated_at/by move and
// every cached view is dropped. Callers hold s.mu.
func (s *Sim) touch(rec *record, t time.Time, userName string) {
	rec.data["last_updated_at"] = formatTime(t)
	if userName != "" {
		rec.data["last_updated_by"] = userName
	}
	rec.updatedAt = t
	rec.full = nil
	s.version++
	for k := range rec.data {
		s.fieldNames[k] = struct{}{}
	}
}

// associate recomputes associated_user_names = owner + assigned users, as
// Primero's Ownable concern does before every save.
func associate(data map[string]any) {
	names := []string{}
	if o := str(data["owned_by"]); o != "" {
		names = append(names, o)
	}
	for _, n := range stringList(data["assigned_user_names"]) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	data["associated_user_names"] = anyList(names)
}

// canSee applies the role scope of u to rec.
func (s *Sim) canSee(u *user, rec *record) bool {
	scope := u.scope()
	if scope == ScopeAll {
		return true
	}
	assoc := stringList(rec.data["associated_user_names"])
	if slices.Contains(assoc, u.name()) {
		return true
	}
	switch scope {
	case ScopeGroup:
		groups := stringList(rec.data["owned_by_groups"])
		for _, n := range assoc {
			if o := s.users[n]; o != nil {
				groups = append(groups, o.spec.UserGroupUniqueIDs...)
			}
		}
		for _, g := range u.spec.UserGroupUniqueIDs {
			if slices.Contains(groups, g) {
				return true
			}
		}
	case ScopeAgency:
		if u.spec.AgencyUniqueID == "" {
			return false
		}
		if str(rec.data["owned_by_agency_id"]) == u.spec.AgencyUniqueID {
			return true
		}
		for _, n := range assoc {
			if o := s.users[n]; o != nil && o.spec.AgencyUniqueID == u.spec.AgencyUniqueID {
				return true
			}
		}
	}
	return false
}

// view renders rec for u: id, enabled, the readable fields (only those in
// `only` when it is non-nil), and always last_updated_at. Callers hold s.mu.
func (s *Sim) view(rec *record, canRead func(string) bool, only map[string]bool) map[string]any {
	out := make(map[string]any, len(rec.data)+4)
	for k, v := range rec.data {
		if only != nil && !only[k] {
			continue
		}
		if canRead(k) {
			out[k] = v
		}
	}
	if _, ok := out["name"]; ok && rec.data["hidden_name"] == true {
		out["name"] = "*******"
	}
	if only == nil {
		if log := s.syncLog[rec.id]; len(log) > 0 {
			last := log[len(log)-1]
			if canRead("synced_at") && last.Synced {
				out["synced_at"] = formatTime(last.At)
			}
			if canRead("sync_status") && last.Status != "" {
				out["sync_status"] = last.Status
			}
		}
	}
	out["id"] = rec.id
	out["enabled"] = rec.enabled()
	out["last_updated_at"] = rec.data["last_updated_at"]
	return out
}

// viewJSON renders the full view of rec for u as JSON, cached when u reads
// every field. Callers hold s.mu.
func (s *Sim) viewJSON(rec *record, u *user) ([]byte, error) {
	if u.readable == nil && rec.full != nil {
		return rec.full, nil
	}
	b, err := json.Marshal(s.view(rec, u.canRead, nil))
	if err != nil {
		return nil, err
	}
	if u.readable == nil {
		rec.full = b
	}
	return b, nil
}
