package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"refbridge"
)

// maxDepth bounds JSON nesting. The deepest DTP message (batch → item →
// lookup → KeyAttributes → element) needs 5 levels; 16 leaves room for
// __query_params without letting a body exhaust the decoder.
const maxDepth = 16

// maxIssues bounds the structural problems reported per item (and for the
// envelope), so that a 4 MiB body of repeated keys cannot make an answer
// many times its size; the rest are counted in one last problem.
const maxIssues = 20

// maxKeyLen bounds an idempotency key; real ones are ~21 (intervention
// number) and ~50 (org-referral id) characters.
const maxKeyLen = 128

func jsonValid(b []byte) bool { return json.Valid(b) }

// syntaxOffset finds where invalid JSON goes wrong (error path only).
func syntaxOffset(b []byte) int {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(b, &v); errors.As(err, &se) {
		return int(se.Offset)
	}
	return 0
}

// schema is the shape of a message as the domain type declares it: the keys
// an object may have, the element shape of an array. A leaf (no fields, no
// elem) is a scalar; open accepts any JSON (json.RawMessage).
type schema struct {
	fields map[string]*schema
	elem   *schema
	open   bool
	// items marks the array whose elements are the batch's items, so that a
	// problem inside one item rejects only that item.
	items bool
}

// schemaOf derives the schema of t from its JSON tags.
func schemaOf(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return &schema{open: true}
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &schema{fields: make(map[string]*schema, t.NumField())}
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s.fields[name] = schemaOf(f.Type)
		}
		return s
	case reflect.Slice, reflect.Array:
		return &schema{elem: schemaOf(t.Elem())}
	case reflect.Map, reflect.Interface:
		return &schema{open: true}
	}
	return &schema{}
}

// batchSchema is the schema of a DTP batch type with its "interventions"
// array marked as the items.
func batchSchema(t reflect.Type) *schema {
	s := schemaOf(t)
	s.fields["interventions"].items = true
	return s
}

// issue is one structural problem found by scan.
type issue struct {
	item   int    // index of the batch item it is in, -1 outside any item
	field  string // JSON path, relative to the item when item >= 0
	rule   string
	detail string
}

type frame struct {
	sch    *schema // nil: contents not checked
	object bool
	key    string // current key (object)
	index  int    // current index (array)
	keys   map[string]struct{}
	item   int // batch item this frame is in, -1 if none
	base   int // stack position of that item's frame
}

// scan walks JSON that json.Valid accepted and reports nesting deeper than
// maxDepth (tooDeep, scan stops), keys repeated within an object, and keys
// root does not declare. It reports exact key spellings, unlike
// encoding/json, which matches keys case-insensitively. A value whose JSON
// type differs from the schema is not looked into: the decoder reports it.
func scan(b []byte, root *schema) (issues []issue, tooDeep bool) {
	stack := make([]frame, 0, 8)
	expectKey := false
	perItem := map[int]int{}
	report := func(is issue) {
		if perItem[is.item]++; perItem[is.item] <= maxIssues {
			issues = append(issues, is)
		}
	}
	defer func() {
		for item, n := range perItem {
			if n > maxIssues {
				issues = append(issues, issue{item: item, field: "$", rule: RuleInvalidJSON,
					detail: itoa(n-maxIssues) + " more unknown or repeated keys were found"})
			}
		}
	}()
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				expectKey = true
			} else {
				top.index++
			}
			i++
		case '{', '[':
			if len(stack) >= maxDepth {
				return issues, true
			}
			child := frame{object: c == '{', item: -1}
			sch := root
			if n := len(stack); n > 0 {
				p := &stack[n-1]
				child.item, child.base, sch = p.item, p.base, nil
				if p.sch != nil {
					if p.object {
						sch = p.sch.fields[p.key]
					} else {
						sch = p.sch.elem
						if p.sch.items {
							child.item, child.base = p.index, n
						}
					}
				}
			}
			if sch != nil && (sch.open || child.object && sch.fields == nil || !child.object && sch.elem == nil) {
				sch = nil
			}
			child.sch = sch
			stack = append(stack, child)
			expectKey = child.object
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case '"':
			end := stringEnd(b, i)
			if expectKey {
				top := &stack[len(stack)-1]
				key := unquoteKey(b[i:end])
				if top.keys == nil {
					top.keys = make(map[string]struct{}, 8)
				}
				_, dup := top.keys[key]
				switch {
				case dup:
					report(issueAt(stack, key, RuleDuplicateKey, "the key appears more than once in this object"))
				case top.sch != nil && top.sch.fields[key] == nil:
					report(issueAt(stack, key, RuleUnknownField, "the contract does not declare this key"))
				}
				top.keys[key] = struct{}{}
				top.key = key
				expectKey = false
			}
			i = end
		default: // number, true, false, null
			for i < len(b) && strings.IndexByte(",}] \t\n\r", b[i]) < 0 {
				i++
			}
		}
	}
	return issues, false
}

// stringEnd returns the index just after the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

func unquoteKey(q []byte) string {
	if bytes.IndexByte(q, '\\') < 0 && len(q) >= 2 {
		return string(q[1 : len(q)-1])
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "?"
	}
	return s
}

// issueAt builds the issue for key in the innermost object of stack, with
// its path relative to the enclosing batch item, if any.
func issueAt(stack []frame, key, rule, detail string) issue {
	top := stack[len(stack)-1]
	start := 0
	if top.item >= 0 {
		start = top.base
	}
	var sb strings.Builder
	for _, f := range stack[start : len(stack)-1] {
		if f.object {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(displayKey(f.key))
		} else {
			sb.WriteString("[" + itoa(f.index) + "]")
		}
	}
	if sb.Len() > 0 {
		sb.WriteByte('.')
	}
	sb.WriteString(displayKey(key))
	return issue{item: top.item, field: sb.String(), rule: rule, detail: detail}
}

// displayKey makes a key from a request safe to put in a path: printable
// ASCII, at most 64 bytes. Keys are the sender's own names, not values.
func displayKey(k string) string {
	var sb strings.Builder
	for i := 0; i < len(k) && sb.Len() < 64; i++ {
		if c := k[i]; c >= 0x20 && c < 0x7f {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('?')
		}
	}
	if len(k) > 64 {
		sb.WriteString("…")
	}
	return sb.String()
}

// displayCode quotes a code from a request (request_type, record_type) in
// a detail only when it is one of known, the codes the peer really uses; any
// other text could be anything, a person's name included, and is not shown.
func displayCode(s string, known ...string) string {
	if slices.Contains(known, s) {
		return fmt.Sprintf("%q", s)
	}
	return "a value that is not a known code"
}

// validKey reports whether a trimmed idempotency key can be stored and
// echoed: 1..maxKeyLen printable ASCII characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for i := range len(k) {
		if c := k[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// decodeItem decodes one batch item strictly. Problems name the JSON path
// inside the item and the kind of value found, never the value.
func decodeItem[T any](raw json.RawMessage) (T, []refbridge.Problem) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	if err == nil {
		return v, nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field, want := te.Field, jsonKind(te.Type)
		if field == "" {
			field = "$"
		}
		return v, []refbridge.Problem{{Field: field, Rule: RuleType,
			Detail: "is a JSON " + te.Value + " where the contract has " + want}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return v, []refbridge.Problem{{Field: displayKey(strings.Trim(name, `"`)), Rule: RuleUnknownField,
			Detail: "the contract does not declare this key"}}
	}
	return v, []refbridge.Problem{{Field: "$", Rule: RuleInvalidJSON, Detail: "the item cannot be decoded"}}
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "another type"
}

// lenientKey reads the key field of an item that did not decode strictly,
// so the refusal can still be stored against its key and reported to DTP.
func lenientKey(raw json.RawMessage, field string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var k string
	if json.Unmarshal(m[field], &k) != nil {
		return ""
	}
	return strings.TrimSpace(k)
}

// canonicalJSON encodes v compactly with object keys sorted at every level
// (numbers kept as written), so equal content gives equal bytes whatever
// the sender's key order or spacing.
func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic)
}

// canonicalRow returns a canonical encoder for the domain type T. A struct
// encodes with its fields always in the same order, so only the raw JSON it
// carries needs sorting: the KeyAttributes of its lookups (T has no other
// raw JSON; TestOnlyLookupsHoldRawJSON keeps that true). Cheaper than
// canonicalJSON, which would decode and encode every row once more.
func canonicalRow[T any]() func(*T) ([]byte, error) {
	t := reflect.TypeFor[T]()
	var lookups []int
	for i := range t.NumField() {
		if t.Field(i).Type == reflect.TypeFor[*refbridge.Lookup]() {
			lookups = append(lookups, i)
		}
	}
	return func(v *T) ([]byte, error) {
		rv := reflect.ValueOf(v).Elem()
		for _, i := range lookups {
			l, _ := rv.Field(i).Interface().(*refbridge.Lookup)
			if l == nil {
				continue
			}
			for j, ka := range l.KeyAttributes {
				c, err := canonicalJSON(ka)
				if err != nil {
					return nil, err
				}
				l.KeyAttributes[j] = c
			}
		}
		return json.Marshal(v)
	}
}

// contentHash is the hex SHA-256 of the canonical JSON array of rows taken
// in bytewise order, so row order does not change it.
func contentHash(rows [][]byte) string {
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, bytes.Compare)
	h := sha256.New()
	h.Write([]byte{'['})
	for i, r := range sorted {
		if i > 0 {
			h.Write([]byte{','})
		}
		h.Write(r)
	}
	h.Write([]byte{']'})
	return hex.EncodeToString(h.Sum(nil))
}

// jsonArray joins canonical JSON values into a JSON array.
func jsonArray(rows [][]byte) []byte {
	n := 2 + max(len(rows)-1, 0)
	for _, r := range rows {
		n += len(r)
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, r := range rows {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	return append(out, ']')
}
