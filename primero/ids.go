package primero

import (
	"github.com/google/uuid"
)

// newUUID returns a random (version 4) UUID in lowercase, the form Primero
// stores. The id is what makes a retried create safe: two bridges, or two
// runs, must never pick the same one, so it comes from crypto/rand.
func newUUID() (string, error) {
	u, err := uuid.NewRandom()
	if err != nil {
		return "", err
	}
	return u.String(), nil
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
