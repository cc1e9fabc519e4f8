package profile

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// decoder fills the document types from the YAML syntax tree itself rather
// than through yaml.Unmarshal, because a focal point must see every unknown
// key and wrong type at once, each with its path and line, not just the first.
type decoder struct {
	findings []Finding
	// pos records where each path starts, so that checks made later on the
	// decoded values can point at a line.
	pos map[string]token.Position
	// comments holds the line comment written after a scalar, by path; a
	// `review: true  # why` warning quotes it.
	comments map[string]string
}

func newDecoder() *decoder {
	return &decoder{pos: map[string]token.Position{}, comments: map[string]string{}}
}

func (d *decoder) errorf(path string, n ast.Node, format string, args ...any) {
	f := Finding{Path: path, Severity: Error, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p := nodePos(n)
		f.Line, f.Column = p.Line, p.Column
	}
	d.findings = append(d.findings, f)
}

// nodePos is where a person would look for n: a mapping starts at its first key.
func nodePos(n ast.Node) token.Position {
	switch n := n.(type) {
	case *ast.MappingNode:
		if len(n.Values) > 0 {
			return nodePos(n.Values[0])
		}
	case *ast.MappingValueNode:
		if n.Key != nil {
			return *n.Key.GetToken().Position
		}
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return *tk.Position
	}
	return token.Position{}
}

func (d *decoder) mark(path string, n ast.Node) {
	if _, seen := d.pos[path]; !seen && n != nil {
		d.pos[path] = nodePos(n)
	}
}

// decode stores n into v (addressable), reporting every mismatch under path.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
			continue
		case *ast.TagNode:
			n = x.Value
			continue
		}
		break
	}
	if n == nil {
		return
	}
	if _, isNull := n.(*ast.NullNode); isNull {
		return
	}
	if _, isAlias := n.(*ast.AliasNode); isAlias {
		d.errorf(path, n, "aliases (*name) are not supported in a profile; write the value out")
		return
	}
	if cg := n.GetComment(); cg != nil {
		if c := commentText(cg); c != "" {
			d.comments[path] = c
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if v.Type() == reflect.TypeFor[Label]() {
			if s, ok := scalarText(n); ok {
				v.Set(reflect.ValueOf(Label{"en": s}))
				return
			}
		}
		d.decodeMap(n, v, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.errorf(path, n, "must be a list")
			return
		}
		out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.mark(p, item)
			d.decode(item, out.Index(i), p)
		}
		v.Set(out)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.errorf(path, n, "must be a single value, not a list or mapping")
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(path, n, "must be true or false")
			return
		}
		v.SetBool(b.Value)
	case reflect.Int:
		s, ok := n.(*ast.IntegerNode)
		if !ok {
			d.errorf(path, n, "must be a whole number")
			return
		}
		i, err := strconv.Atoi(s.GetToken().Value)
		if err != nil {
			d.errorf(path, n, "must be a whole number")
			return
		}
		v.SetInt(int64(i))
	case reflect.Interface:
		// A condition's expected value: true/false stay booleans, anything
		// else is compared as the text written.
		if b, ok := n.(*ast.BoolNode); ok {
			v.Set(reflect.ValueOf(b.Value))
			return
		}
		s, ok := scalarText(n)
		if !ok {
			d.errorf(path, n, "must be a single value, not a list or mapping")
			return
		}
		v.Set(reflect.ValueOf(s))
	default:
		d.errorf(path, n, "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(ast.MapNode)
	if !ok {
		d.errorf(path, n, "must be a mapping of keys to values")
		return
	}
	fields := yamlFields(v.Type())
	it := m.MapRange()
	for it.Next() {
		key, kn := mapKey(it.KeyValue())
		p := childPath(path, key)
		d.mark(p, kn)
		i, known := fields[key]
		if !known {
			d.errorf(p, kn, "unknown key %q (known here: %s)", key, strings.Join(sortedKeys(fields), ", "))
			continue
		}
		d.decode(it.Value(), v.Field(i), p)
	}
}

func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(ast.MapNode)
	if !ok {
		d.errorf(path, n, "must be a mapping of keys to values")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	it := m.MapRange()
	for it.Next() {
		key, kn := mapKey(it.KeyValue())
		p := childPath(path, key)
		d.mark(p, kn)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(it.Value(), elem, p)
		v.SetMapIndex(reflect.ValueOf(key), elem)
	}
}

// mapKey returns the key text of one mapping entry and the node to point at.
func mapKey(kv *ast.MappingValueNode) (string, ast.Node) {
	if s, ok := scalarText(kv.Key); ok {
		return s, kv
	}
	return kv.Key.String(), kv
}

// scalarText returns a scalar's text as written: an unquoted 125080000 is the
// code "125080000", not a number.
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return x.GetToken().Value, true
	case *ast.MappingKeyNode:
		return scalarText(x.Value)
	}
	return "", false
}

func commentText(cg *ast.CommentGroupNode) string {
	var parts []string
	for _, c := range cg.Comments {
		if c == nil || c.Token == nil {
			continue
		}
		if t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c.Token.Value), "#")); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
}

// childPath appends key the way go-yaml writes paths, quoting keys that hold
// path syntax, so positions recorded here and paths built by checks agree.
func childPath(path, key string) string {
	if strings.ContainsAny(key, "$*.[]") {
		return path + ".'" + key + "'"
	}
	return path + "." + key
}

// yamlFields maps each yaml key of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}
