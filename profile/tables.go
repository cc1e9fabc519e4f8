package profile

import (
	"maps"
	"slices"
)

// Table is one of a profile's code tables, for display: each row maps a
// code of one system to the other's.
type Table struct {
	// Name says which table and which way (e.g. "sex: proGres → Primero").
	Name string
	Rows [][2]string
}

// Tables returns every code table of the profile, rows sorted by their
// first column, so a focal point can see all of them in one place (the
// console's profile page). Labels are given in the profile's language.
func (p *Profile) Tables() []Table {
	table := func(name string, m map[string]string) Table {
		t := Table{Name: name}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			t.Rows = append(t.Rows, [2]string{k, m[k]})
		}
		return t
	}
	labels := func(m map[string]Label) map[string]string {
		out := make(map[string]string, len(m))
		for k, l := range m {
			out[k] = l.Text(p.language)
		}
		return out
	}
	return []Table{
		table("services: proGres → Primero", p.serviceIn),
		table("services: Primero → DTP", p.serviceOut),
		table("services: implementing agency", p.serviceAgency),
		table("languages: proGres → Primero", p.languageIn),
		table("languages: Primero → proGres", p.languageOut),
		table("sex: proGres → Primero", p.sexIn),
		table("sex: Primero → proGres", p.sexOut),
		table("protection concerns: proGres → Primero", p.protectionIn),
		table("decisions: proGres → Primero", p.decisionIn),
		table("decisions: Primero → proGres", p.decisionOut),
		table("rejection reasons", labels(p.reasons)),
		table("delivery failure texts", labels(p.deliveryFailed)),
	}
}
