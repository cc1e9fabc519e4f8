package mapping

import (
	"encoding/json"
	"html"
	"strings"
	"unicode/utf8"
)

// HTMLToText reduces a proGres rich-text fragment to plain text: tags,
// comments and script/style contents go, block elements become line breaks,
// entities are decoded once (so "&lt;b&gt;" is text, never a tag) and white
// space runs collapse; all other text is kept byte for byte.
func HTMLToText(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return collapseSpace(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	// Breaks are written only between text, so that a fragment such as
	// "<p>text</p>" comes out tidy and collapseSpace need not copy it.
	pendingBreak := false
	text := func(t string) {
		if t == "" {
			return
		}
		if strings.IndexByte(t, '&') >= 0 {
			t = html.UnescapeString(t)
		}
		if pendingBreak && b.Len() > 0 {
			b.WriteByte('\n')
		}
		pendingBreak = false
		b.WriteString(t)
	}
	for i := 0; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			text(s[i:])
			break
		}
		text(s[i : i+lt])
		i += lt
		end, name, closing, kind := scanTag(s, i)
		switch kind {
		case tagText: // a '<' that opens no tag, as in "age < 5"
			text("<")
			i++
			continue
		case tagEOF: // an unterminated tag swallows the rest, as browsers do
			i = len(s)
			continue
		}
		i = end
		if kind == tagElement && !closing && (name == "script" || name == "style") {
			i = skipRawText(s, i, name)
		}
		if kind == tagElement && blockElement(name) {
			pendingBreak = true
		}
	}
	return collapseSpace(b.String())
}

type tagKind int

const (
	tagText tagKind = iota
	tagElement
	tagOther // comment, doctype, processing instruction
	tagEOF
)

// scanTag reads the markup starting at s[i] == '<' and returns the index
// just past it, the lower-cased element name and whether it is a closing tag.
func scanTag(s string, i int) (end int, name string, closing bool, kind tagKind) {
	j := i + 1
	if j >= len(s) {
		return 0, "", false, tagText
	}
	switch c := s[j]; {
	case strings.HasPrefix(s[j:], "!--"):
		k := strings.Index(s[j+3:], "-->")
		if k < 0 {
			return 0, "", false, tagEOF
		}
		return j + 3 + k + 3, "", false, tagOther
	case c == '!' || c == '?':
		k := strings.IndexByte(s[j:], '>')
		if k < 0 {
			return 0, "", false, tagEOF
		}
		return j + k + 1, "", false, tagOther
	case c == '/':
		closing = true
		j++
	}
	if j >= len(s) || !isASCIILetter(s[j]) {
		return 0, "", false, tagText
	}
	start := j
	for j < len(s) && (isASCIILetter(s[j]) || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	name = strings.ToLower(s[start:j])
	// Skip attributes up to '>', honouring quotes so a '>' inside a value
	// does not end the tag.
	var quote byte
	for ; j < len(s); j++ {
		switch c := s[j]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return j + 1, name, closing, tagElement
		}
	}
	return 0, "", false, tagEOF
}

// skipRawText returns the index past the "</name ...>" that closes a script
// or style element opened before i, or len(s) if there is none.
func skipRawText(s string, i int, name string) int {
	for i < len(s) {
		k := strings.Index(s[i:], "</")
		if k < 0 {
			return len(s)
		}
		i += k
		if n := i + 2 + len(name); n <= len(s) && strings.EqualFold(s[i+2:n], name) &&
			(n == len(s) || !isASCIILetter(s[n])) {
			if end, _, _, kind := scanTag(s, i); kind == tagElement {
				return end
			}
			return len(s)
		}
		i += 2
	}
	return len(s)
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func blockElement(name string) bool {
	switch name {
	case "p", "br", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article":
		return true
	}
	return false
}

// collapseSpace turns each run of spaces and tabs into one space and each run
// of line breaks (with the spaces around them) into one "\n", and trims the
// ends. Other characters are copied as they are. Text that needs none of
// this is returned without copying.
func collapseSpace(s string) string {
	if tidy(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace, pendingBreak := false, false
	for i := 0; i < len(s); {
		c := s[i]
		size := 1
		kind := spaceKind(c)
		if c >= utf8.RuneSelf {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == '\u00a0' {
				kind = 1
			}
		}
		switch kind {
		case 2:
			pendingBreak = true
		case 1:
			pendingSpace = true
		default:
			if b.Len() > 0 {
				if pendingBreak {
					b.WriteByte('\n')
				} else if pendingSpace {
					b.WriteByte(' ')
				}
			}
			pendingSpace, pendingBreak = false, false
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// spaceKind classifies an ASCII byte: 2 line break, 1 space, 0 other.
func spaceKind(c byte) int {
	switch c {
	case '\n', '\r', '\f', '\v':
		return 2
	case ' ', '\t':
		return 1
	}
	return 0
}

// tidy reports whether collapseSpace would return s unchanged: ASCII
// without breaks, tabs, leading, trailing or doubled spaces.
func tidy(s string) bool {
	prevSpace := true // a leading space is not tidy
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || spaceKind(c) == 2 || c == '\t' {
			return false
		}
		if c == ' ' {
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}

// comment is one element of a proGres comment store such as
// progres_reasonforreferral (a JSON-encoded string, contract §2.3).
type comment struct {
	CreatedBy string `json:"CreatedBy"`
	Text      string `json:"Text"`
	CreatedOn string `json:"CreatedOn"`
}

// parseComments decodes a proGres comment store. A blank store has no
// comments; anything but a JSON list of comment objects is an error.
func parseComments(s string) ([]comment, error) {
	if blank(s) {
		return nil, nil
	}
	if cs, ok := scanComments(s); ok {
		return cs, nil
	}
	var cs []comment
	if err := json.Unmarshal([]byte(s), &cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// scanComments is parseComments' fast path for the usual shape (exact keys,
// unescaped string values); anything else reports false and goes to
// encoding/json, whose results FuzzScanComments holds this path to.
func scanComments(s string) ([]comment, bool) {
	i := skipJSONSpace(s, 0)
	if i >= len(s) || s[i] != '[' {
		return nil, false
	}
	cs := make([]comment, 0, 1)
	i = skipJSONSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return cs, skipJSONSpace(s, i+1) == len(s)
	}
	for {
		if i >= len(s) || s[i] != '{' {
			return nil, false
		}
		var c comment
		i = skipJSONSpace(s, i+1)
		if i < len(s) && s[i] == '}' {
			i++
		} else {
			for {
				key, j, ok := scanPlainString(s, i)
				if !ok {
					return nil, false
				}
				if i = skipJSONSpace(s, j); i >= len(s) || s[i] != ':' {
					return nil, false
				}
				val, j, ok := scanPlainString(s, skipJSONSpace(s, i+1))
				if !ok {
					return nil, false
				}
				switch key {
				case "CreatedBy":
					c.CreatedBy = val
				case "Text":
					c.Text = val
				case "CreatedOn":
					c.CreatedOn = val
				default:
					return nil, false
				}
				if i = skipJSONSpace(s, j); i >= len(s) {
					return nil, false
				}
				if s[i] == ',' {
					i = skipJSONSpace(s, i+1)
					continue
				}
				if s[i] != '}' {
					return nil, false
				}
				i++
				break
			}
		}
		cs = append(cs, c)
		if i = skipJSONSpace(s, i); i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i = skipJSONSpace(s, i+1)
		case ']':
			return cs, skipJSONSpace(s, i+1) == len(s)
		default:
			return nil, false
		}
	}
}

func skipJSONSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString reads a JSON string at s[i] that needs no decoding: no
// escapes, no control characters, valid UTF-8. It returns the contents and
// the index past the closing quote.
func scanPlainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	ascii := true
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			v := s[i+1 : j]
			if !ascii && !utf8.ValidString(v) {
				return "", 0, false
			}
			return v, j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}

// referralNotes builds service_referral_notes from the intervention's
// description and reason-for-referral comments: plain text, one part per
// line. Comment authors (proGres staff) and dates are kept only when the ISP
// allows the authors' names into Primero.
func referralNotes(description string, reasons []comment, withAuthors bool) string {
	var parts [4]string // the usual description and a few comments stay on the stack
	notes := parts[:0]
	if d := HTMLToText(description); d != "" {
		notes = append(notes, d)
	}
	for _, c := range reasons {
		t := HTMLToText(c.Text)
		if t == "" {
			continue
		}
		if withAuthors {
			var by []string
			if a := collapseSpace(c.CreatedBy); a != "" {
				by = append(by, a)
			}
			if on, ok := parseDateTime(c.CreatedOn); ok {
				by = append(by, on.Format("2006-01-02"))
			}
			if len(by) > 0 {
				t += " (" + strings.Join(by, ", ") + ")"
			}
		}
		notes = append(notes, t)
	}
	return strings.Join(notes, "\n")
}
