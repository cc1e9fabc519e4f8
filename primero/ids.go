package primero

import (
	"crypto/rand"
	"encoding/hex"
)

// newUUID returns a random (version 4) UUID in lowercase, the form Primero
// stores. crypto/rand, because the id is what makes a retried create safe:
// two bridges, or two runs, must never pick the same one.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:]), nil
}

// isUUID reports whether s is a UUID in 8-4-4-4-12 hex form, either case.
// Ids are checked before they go into a URL path, so no other text can.
func isUUID(s string) bool { return uuidForm(s, false) }

// isLowerUUID reports whether s is a UUID in lowercase, the only form
// Primero accepts for subform unique_ids.
func isLowerUUID(s string) bool { return uuidForm(s, true) }

func uuidForm(s string, lowerOnly bool) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F' && !lowerOnly:
		default:
			return false
		}
	}
	return true
}

// isFieldName reports whether s looks like a Primero field name
// (lowercase letters, digits, underscores, starting with a letter).
func isFieldName(s string) bool {
	if s == "" || len(s) > 100 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
