package mapping

import (
	"strings"
	"time"
)

// parseDateTime reads the date-times proGres sends: "2021-09-27T00:00:00Z",
// the same without a zone (older samples; read as UTC), with fractional
// seconds, or a bare date.
func parseDateTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	layout := time.RFC3339
	switch {
	case len(s) == len(time.DateOnly):
		layout = time.DateOnly
	case !hasZone(s):
		layout = "2006-01-02T15:04:05"
	}
	t, err := time.Parse(layout, s)
	return t, err == nil
}

// hasZone reports whether a date-time ends in Z or a ±hh:mm offset.
func hasZone(s string) bool {
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		return true
	}
	return len(s) > 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-') && s[len(s)-3] == ':'
}

// civil is a calendar date with no time or zone: a birth date is a day, not
// an instant, so it must not shift when read in another zone.
type civil struct{ y, m, d int }

func civilOf(t time.Time) civil {
	y, m, d := t.Date()
	return civil{y, int(m), d}
}

func (c civil) before(o civil) bool {
	if c.y != o.y {
		return c.y < o.y
	}
	if c.m != o.m {
		return c.m < o.m
	}
	return c.d < o.d
}

// Age returns the completed years between the birth date and now's calendar
// date in now's location. A birthday counts once its month and day are
// reached, so someone born on 29 February turns a year older on 1 March in
// common years.
func Age(birth, now time.Time) int {
	b, n := civilOf(birth), civilOf(now)
	age := n.y - b.y
	if n.m < b.m || n.m == b.m && n.d < b.d {
		age--
	}
	return age
}

// isUUID reports whether s is a UUID in 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}
