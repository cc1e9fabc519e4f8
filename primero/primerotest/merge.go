package primerotest

// Merging a PATCH into stored data, as RecordMergeDataHashService does:
// objects are merged key by key; lists of objects (subforms) are merged
// item by item on unique_id; anything else is replaced.

// mergeValue returns the value of a field after writing patch over old.
// old is not modified; newID fills missing subform unique_ids.
func mergeValue(old, patch any, newID func() string) any {
	switch p := patch.(type) {
	case map[string]any:
		o, ok := old.(map[string]any)
		if !ok {
			o = nil
		}
		m := make(map[string]any, len(o)+len(p))
		for k, v := range o {
			m[k] = deepCopy(v)
		}
		for k, v := range p {
			m[k] = mergeValue(o[k], v, newID)
		}
		return m
	case []any:
		if !isObjectList(p) {
			return deepCopy(p)
		}
		var base []any
		if isObjectList(old) {
			base = deepCopy(old).([]any)
		} else if len(p) == 0 {
			return []any{}
		}
		return mergeSubform(base, p, newID)
	default:
		return p
	}
}

// mergeSubform merges items into base (already a copy): a matching
// unique_id is merged into the stored item, an unknown or missing one is
// appended (with a fresh unique_id), "_destroy": true removes the item,
// items not sent are kept — so [] changes nothing.
func mergeSubform(base, items []any, newID func() string) []any {
	for _, e := range items {
		item, ok := e.(map[string]any)
		if !ok {
			continue // rejected earlier by validation
		}
		uid := str(item["unique_id"])
		idx := -1
		if uid != "" {
			for i, b := range base {
				if bm, ok := b.(map[string]any); ok && str(bm["unique_id"]) == uid {
					idx = i
					break
				}
			}
		}
		if destroy(item["_destroy"]) {
			if idx >= 0 {
				base = append(base[:idx], base[idx+1:]...)
			}
			continue
		}
		clean := make(map[string]any, len(item))
		for k, v := range item {
			if k != "_destroy" {
				clean[k] = v
			}
		}
		if idx >= 0 {
			base[idx] = mergeValue(base[idx], clean, newID)
			continue
		}
		fresh := mergeValue(nil, clean, newID).(map[string]any)
		if uid == "" {
			fresh["unique_id"] = newID()
		}
		base = append(base, fresh)
	}
	if base == nil {
		base = []any{}
	}
	return base
}

func destroy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true" || x == "1"
	case int:
		return x == 1
	}
	return false
}
