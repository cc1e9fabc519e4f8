package primerotest

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Users (contract §4).

// AddUser adds or replaces a user account. A zero ID is assigned; a nil
// Disabled means enabled.
func (s *Sim) AddUser(spec UserSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.users[spec.UserName]; old != nil && spec.ID == 0 {
		spec.ID = old.spec.ID
	}
	if spec.ID == 0 {
		spec.ID = s.nextUserID
	}
	s.nextUserID = max(s.nextUserID, spec.ID+1)
	if spec.Disabled == nil {
		f := false
		spec.Disabled = &f
	}
	if _, ok := s.users[spec.UserName]; !ok {
		s.userOrder = append(s.userOrder, spec.UserName)
	}
	s.users[spec.UserName] = &user{
		spec:     spec,
		readable: setOf(spec.ReadableFields),
		writable: setOf(spec.WritableFields),
		perms:    setOf(spec.Permissions),
	}
	if s.users[spec.UserName].perms == nil {
		s.users[spec.UserName].perms = map[string]bool{}
	}
}

// SetUserDisabled enables or disables a user: a disabled user cannot log in
// and cannot receive referrals.
func (s *Sim) SetUserDisabled(userName string, disabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[userName]; u != nil {
		u.spec.Disabled = &disabled
	}
}

// userJSON renders a user as views/api/v2/users/_user.json.jbuilder does;
// phone is null when unknown and disabled is always present.
func userJSON(u *user) map[string]any {
	b, _ := json.Marshal(u.spec.User)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["disabled"] = u.disabled()
	if !u.spec.CreatedAt.IsZero() {
		m["created_at"] = formatTime(u.spec.CreatedAt)
	}
	if !u.spec.UpdatedAt.IsZero() {
		m["updated_at"] = formatTime(u.spec.UpdatedAt)
	}
	return m
}

// listParam collects a param given as name, name[] or name[N].
func listParam(q map[string][]string, name string) []string {
	var out []string
	for k, vals := range q {
		if k == name || k == name+"[]" || (strings.HasPrefix(k, name+"[") && strings.HasSuffix(k, "]") && allDigits(k[len(name)+1:len(k)-1])) {
			out = append(out, vals...)
		}
	}
	return out
}

// handleListUsers is GET /api/v2/users.
func (s *Sim) handleListUsers(w http.ResponseWriter, r *http.Request, _ *user) {
	q := r.URL.Query()
	page := atoiDefault(q.Get("page"), 1)
	per := atoiDefault(q.Get("per"), 20)
	orderBy := q.Get("order_by")
	if orderBy == "" {
		orderBy = "full_name"
	}
	desc := strings.EqualFold(q.Get("order"), "desc")
	agencies := listParam(q, "agency")
	disabled := listParam(q, "disabled")
	name := q.Get("user_name")

	s.mu.Lock()
	var matched []*user
	for _, n := range s.userOrder {
		u := s.users[n]
		if name != "" && u.name() != name {
			continue
		}
		if len(agencies) > 0 && !slices.Contains(agencies, strconv.Itoa(u.spec.AgencyID)) {
			continue
		}
		if len(disabled) > 0 && !slices.Contains(disabled, strconv.FormatBool(u.disabled())) {
			continue
		}
		matched = append(matched, u)
	}
	slices.SortStableFunc(matched, func(a, b *user) int {
		var c int
		switch orderBy {
		case "user_name":
			c = cmp.Compare(a.name(), b.name())
		case "id":
			c = cmp.Compare(a.spec.ID, b.spec.ID)
		default:
			c = cmp.Compare(a.spec.FullName, b.spec.FullName)
		}
		if desc {
			return -c
		}
		return c
	})
	enabled := 0
	for _, u := range matched {
		if !u.disabled() {
			enabled++
		}
	}
	data := []map[string]any{}
	for i := (page - 1) * per; i < len(matched) && i < page*per; i++ {
		data = append(data, userJSON(matched[i]))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"data":     data,
		"metadata": map[string]int{"total": len(matched), "per": per, "page": page, "total_enabled": enabled},
	})
}

// handleReferTo is GET /api/v2/users/refer-to: enabled users other than the
// caller who may receive a referral, optionally by agency and service.
func (s *Sim) handleReferTo(w http.ResponseWriter, r *http.Request, caller *user) {
	q := r.URL.Query()
	agency, service, location := q.Get("agency"), q.Get("service"), q.Get("location")
	s.mu.Lock()
	data := []map[string]any{}
	for _, n := range s.userOrder {
		u := s.users[n]
		if u == caller || u.disabled() {
			continue
		}
		if agency != "" && agency != u.spec.AgencyUniqueID && agency != strconv.Itoa(u.spec.AgencyID) {
			continue
		}
		if service != "" && !slices.Contains(u.spec.Services, service) {
			continue
		}
		if location != "" && u.spec.Location != location {
			continue
		}
		var ag any = u.spec.AgencyID
		if u.spec.AgencyUniqueID != "" {
			ag = u.spec.AgencyUniqueID
		}
		services := u.spec.Services
		if services == nil {
			services = []string{}
		}
		data = append(data, map[string]any{
			"id": u.spec.ID, "user_name": u.name(), "code": u.spec.Code, "position": u.spec.Position,
			"location": u.spec.Location, "agency": ag, "disabled": false, "services": services,
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}
