package console

import (
	"net/http"
	"slices"

	"refbridge"
	"refbridge/profile"
	"refbridge/store"
)

// unmappedScan bounds how many recent refused exchanges the profile page
// reads for codes the profile does not know.
const unmappedScan = 1000

// unmapped is a code the profile's tables lacked in live traffic: the
// field and the mapping's description (which quotes the code, a code and
// never a personal value), with how many recent exchanges met it.
type unmapped struct {
	Field, Detail string
	Count         int
}

func (c *Console) profilePage(w http.ResponseWriter, r *http.Request) {
	var tables []profile.Table
	var digest, site string
	if c.cfg.Profile != nil {
		tables = c.cfg.Profile.Tables()
		digest, site = c.cfg.Profile.Digest(), c.cfg.Profile.SiteID()
	}
	var seen []unmapped
	index := map[[2]string]int{}
	for _, st := range []refbridge.ExchangeState{refbridge.StateRejected, refbridge.StateFailed} {
		exs, _, err := c.store.List(r.Context(), store.Filter{State: st, Limit: unmappedScan})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		for _, ex := range exs {
			for _, p := range ex.Problems {
				if p.Rule != profile.RuleUnknownCode {
					continue
				}
				k := [2]string{p.Field, p.Detail}
				if i, ok := index[k]; ok {
					seen[i].Count++
					continue
				}
				index[k] = len(seen)
				seen = append(seen, unmapped{Field: p.Field, Detail: p.Detail, Count: 1})
			}
		}
	}
	slices.SortFunc(seen, func(a, b unmapped) int { return b.Count - a.Count })
	c.render(w, r, http.StatusOK, "profile", pageData{Title: "profile", Nav: "profile", Data: struct {
		Site, Digest string
		Tables       []profile.Table
		Unmapped     []unmapped
	}{site, digest, tables, seen}})
}
