package engine

import (
	"encoding/json"
	"slices"
)

// sharedFields names the top-level fields of a message as it goes to a
// peer, for the audit's "which fields": names only, never values. The
// message has already passed the profile's ISP allow-list.
func sharedFields(msg any) []string {
	b, err := json.Marshal(msg)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if string(v) != "null" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// progresActor names the proGres user behind an intervention by its record
// id (the owning user), never by a person's name.
func progresActor(id string) string {
	if id == "" {
		return ""
	}
	return "progres:" + id
}

// primeroActor names a Primero user by user_name.
func primeroActor(userName string) string {
	if userName == "" {
		return ""
	}
	return "primero:" + userName
}
