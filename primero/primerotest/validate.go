package primerotest

import (
	"slices"
	"sort"
	"strconv"
	"time"
)

// The simulator knows the types of the fields of the default CP
// configuration that refbridge touches; any other field is accepted as is,
// like a field of a custom form (Primero's data column is jsonb).

type kind int

const (
	kAny kind = iota
	kBool
	kInt
	kDate
	kString
	kStringList
	kSubform
	kEnum
)

// caseFieldKind returns the type of a top-level case field and, for kEnum,
// the allowed values.
func caseFieldKind(name string) (kind, []string) {
	switch name {
	case "age":
		return kInt, nil
	case "consent_for_services", "disclosure_other_orgs", "consent_for_data_collection",
		"unhcr_export_opt_in", "hidden_name", "mark_synced":
		return kBool, nil
	case "date_of_birth", "registration_date":
		return kDate, nil
	case "status":
		return kEnum, []string{"open", "closed", "transferred", "identified"}
	case "language", "protection_concerns", "assigned_user_names", "owned_by_groups", "nationality":
		return kStringList, nil
	case "services_section", "notes_section", "family_details_section", "reopened_logs":
		return kSubform, nil
	case "name", "name_first", "name_middle", "name_last", "name_nickname", "sex", "owned_by",
		"owned_by_agency_id", "created_organization", "module_id", "case_id", "unhcr_id_no",
		"unhcr_individual_no", "national_id_no", "other_agency_id", "cpims_id",
		"mark_synced_url", "mark_synced_status", "workflow", "risk_level":
		return kString, nil
	}
	return kAny, nil
}

// serviceFieldKind is caseFieldKind for services_section items.
func serviceFieldKind(name string) (kind, []string) {
	switch name {
	case "service_status_referred", "service_request_external":
		return kBool, nil
	case "service_implemented":
		return kEnum, []string{"implemented", "not_implemented"}
	case "service_response_type":
		return kEnum, []string{"care_plan", "action_plan", "service_provision"}
	case "service_appointment_date", "service_implemented_day_time", "service_response_day_time":
		return kDate, nil
	case "referral_follow_up_medium":
		return kStringList, nil
	case "unique_id", "service_type", "service_implementing_agency", "service_implementing_agency_individual",
		"unhcr_referral_status", "unhcr_referral_rejection_reason", "note_on_referral_from_provider":
		return kString, nil
	}
	return kAny, nil
}

// managedField reports fields the server computes; a client's value is
// dropped silently, as strong params would.
func managedField(name string) bool {
	switch name {
	case "id", "enabled", "created_at", "created_by", "last_updated_at", "last_updated_by",
		"unique_identifier", "short_id", "case_id_display", "associated_user_names",
		"record_state", "synced_at", "sync_status", "record_in_scope":
		return true
	}
	return false
}

// syncField reports the write-only sync status attributes (contract §7).
func syncField(name string) bool {
	switch name {
	case "mark_synced", "mark_synced_url", "mark_synced_status":
		return true
	}
	return false
}

// idField reports Child.filterable_id_fields: always filterable, as exact strings.
func idField(name string) bool {
	switch name {
	case "case_id", "case_id_display", "short_id", "unique_identifier", "unhcr_id_no",
		"unhcr_individual_no", "national_id_no", "other_agency_id", "cpims_id":
		return true
	}
	return false
}

// permittedFilter reports the record fields any case reader may filter on
// (PERMITTED_FILTER_FIELD_NAMES + PERMITTED_RECORD_INFORMATION_FIELDS).
func permittedFilter(name string) bool {
	switch name {
	case "associated_user_names", "owned_by", "owned_by_agency_id", "last_updated_at", "created_at",
		"record_state", "status", "sex", "age", "consent_for_services", "disclosure_other_orgs":
		return true
	}
	return false
}

// cleanWrite splits a client's data into the fields that will be written
// (dropping managed and non-writable ones silently) and the sync
// attributes (kept only for users with sync_external), then validates the
// types. It returns the JSON pointers of invalid values.
func cleanWrite(u *user, data map[string]any) (fields, sync map[string]any, invalid []string) {
	fields = map[string]any{}
	for k, v := range data {
		switch {
		case managedField(k):
		case syncField(k):
			if u.perms[PermSyncExternal] {
				if sync == nil {
					sync = map[string]any{}
				}
				sync[k] = v
			}
		case u.canWrite(k):
			fields[k] = v
		}
	}
	invalid = validateObject(fields, "", caseFieldKind)
	invalid = append(invalid, validateObject(sync, "", caseFieldKind)...)
	sort.Strings(invalid)
	return fields, sync, invalid
}

func validateObject(obj map[string]any, prefix string, kindOf func(string) (kind, []string)) []string {
	var bad []string
	for k, v := range obj {
		ptr := prefix + "/" + k
		if v == nil {
			continue // null clears a field
		}
		kd, enum := kindOf(k)
		switch kd {
		case kBool:
			if _, ok := v.(bool); !ok {
				bad = append(bad, ptr)
			}
		case kInt:
			switch n := v.(type) {
			case int:
			case float64:
				if n != float64(int(n)) {
					bad = append(bad, ptr)
				} else {
					obj[k] = int(n)
				}
			default:
				bad = append(bad, ptr)
			}
		case kDate:
			if s, ok := v.(string); !ok || !validDate(s) {
				bad = append(bad, ptr)
			}
		case kString:
			if _, ok := v.(string); !ok {
				bad = append(bad, ptr)
			}
		case kEnum:
			if s, ok := v.(string); !ok || !slices.Contains(enum, s) {
				bad = append(bad, ptr)
			}
		case kStringList:
			list, ok := v.([]any)
			if !ok {
				bad = append(bad, ptr)
				break
			}
			for i, e := range list {
				if _, ok := e.(string); !ok {
					bad = append(bad, ptr+"/"+strconv.Itoa(i))
				}
			}
		case kSubform:
			bad = append(bad, validateSubform(v, ptr, k)...)
		default:
			// A field of a custom form: if it looks like a subform, its
			// items still need valid unique_ids for the merge to work.
			if isObjectList(v) {
				bad = append(bad, validateSubform(v, ptr, k)...)
			}
		}
	}
	return bad
}

func validateSubform(v any, ptr, name string) []string {
	list, ok := v.([]any)
	if !ok {
		return []string{ptr}
	}
	itemKind := func(string) (kind, []string) { return kAny, nil }
	if name == "services_section" {
		itemKind = serviceFieldKind
	}
	var bad []string
	for i, e := range list {
		iptr := ptr + "/" + strconv.Itoa(i)
		item, ok := e.(map[string]any)
		if !ok {
			bad = append(bad, iptr)
			continue
		}
		if id, present := item["unique_id"]; present && id != nil {
			if s, ok := id.(string); !ok || !isLowerUUID(s) {
				bad = append(bad, iptr+"/unique_id")
			}
		}
		rest := make(map[string]any, len(item))
		for k, x := range item {
			if k != "unique_id" && k != "_destroy" {
				rest[k] = x
			}
		}
		bad = append(bad, validateObject(rest, iptr, itemKind)...)
		for k, x := range rest {
			item[k] = x // keep integer conversions made by validateObject
		}
	}
	return bad
}

// isObjectList reports whether v is a subform value: a list whose items are
// objects. An empty list counts, as in RecordMergeDataHashService.
func isObjectList(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	if len(list) == 0 {
		return true
	}
	_, ok = list[0].(map[string]any)
	return ok
}

// validDate accepts YYYY-MM-DD and ISO-8601 date-times.
func validDate(s string) bool {
	_, ok := parseTime(s)
	return ok
}

// parseTime parses the date and date-time forms Primero stores and accepts
// in filters. A date alone is midnight UTC.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
