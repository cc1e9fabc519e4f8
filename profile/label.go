package profile

import (
	"slices"
	"strings"
)

// Label is text a person reads (a service name, a reason), keyed by language
// code ("en", "fr", "ar", "am", …). In YAML it is a mapping, or a plain string
// meaning English.
type Label map[string]string

// Text returns the label in lang, else in English, else in the first
// language in alphabetical order, else "".
func (l Label) Text(lang string) string {
	if s := l[lang]; s != "" {
		return s
	}
	if s := l["en"]; s != "" {
		return s
	}
	keys := make([]string, 0, len(l))
	for k, v := range l {
		if v != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	return l[keys[0]]
}

// empty reports whether the label has no non-blank text.
func (l Label) empty() bool {
	for _, v := range l {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}
