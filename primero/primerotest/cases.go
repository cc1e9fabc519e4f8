package primerotest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// SyncEntry is one sync-status write-back (mark_synced*) a user with
// sync_external left on a case. Primero keeps these as audit-log entries,
// not as case fields, and shows the latest as synced_at/sync_status.
type SyncEntry struct {
	At     time.Time
	User   string
	Synced bool
	URL    string
	Status string
}

// shortFields is what `fields=short` selects on the case index.
func shortFields() map[string]bool {
	return setOf([]string{"case_id_display", "name", "age", "sex", "registration_date", "created_at",
		"owned_by", "owned_by_agency_id", "status", "flag_count", "alert_count", "record_in_scope"})
}

func atoiDefault(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return def
	}
	return n
}

// handleListCases is GET /api/v2/cases.
func (s *Sim) handleListCases(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	page := atoiDefault(q.Get("page"), 1)
	per := min(atoiDefault(q.Get("per"), 20), s.opts.MaxPer)
	orderBy := q.Get("order_by")
	if orderBy == "" {
		orderBy = "created_at"
	}
	desc := !strings.EqualFold(q.Get("order"), "asc")
	var only map[string]bool
	switch fl := q.Get("fields"); fl {
	case "":
	case "short":
		only = shortFields()
	default:
		only = setOf(strings.Split(fl, ","))
	}
	query := q.Get("query")

	var buf bytes.Buffer
	buf.WriteString(`{"data":[`)
	s.mu.Lock()
	filters := s.parseFilters(q, u)
	start, total, n := (page-1)*per, 0, 0
	for _, rec := range s.sorted(orderBy, desc) {
		if !s.canSee(u, rec) || (query != "" && !matchQuery(rec, query)) {
			continue
		}
		ok := true
		for i := range filters {
			if !filters[i].match(rec) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if total >= start && n < per {
			var b []byte
			var err error
			if only == nil {
				b, err = s.viewJSON(rec, u)
			} else {
				b, err = json.Marshal(s.view(rec, u.canRead, only))
			}
			if err != nil {
				s.mu.Unlock()
				writeErr(w, r, &apiError{status: http.StatusInternalServerError, message: "Internal Server Error"})
				return
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			buf.Write(b)
			n++
		}
		total++
	}
	s.mu.Unlock()
	buf.WriteString(`],"metadata":`)
	meta, _ := json.Marshal(map[string]int{"total": total, "per": per, "page": page})
	buf.Write(meta)
	buf.WriteByte('}')
	writeRaw(w, http.StatusOK, buf.Bytes())
}

// findVisible returns the case id if u may read it: unknown (or non-UUID)
// ids are 404, cases outside u's scope 403. Callers hold s.mu.
func (s *Sim) findVisible(u *user, id string) (*record, *apiError) {
	rec := s.cases[id]
	if rec == nil {
		return nil, errNotFound("Couldn't find Child with 'id'=" + id)
	}
	if !s.canSee(u, rec) {
		return nil, errForbidden()
	}
	return rec, nil
}

// handleGetCase is GET /api/v2/cases/{id}.
func (s *Sim) handleGetCase(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	var b []byte
	if aerr == nil {
		b, _ = json.Marshal(map[string]any{"data": s.view(rec, u.canRead, nil)})
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeRaw(w, http.StatusOK, b)
}

// handleCreateCase is POST /api/v2/cases: 204 without a body when the client
// chose the id, else 200 with the changed fields.
func (s *Sim) handleCreateCase(w http.ResponseWriter, r *http.Request, u *user) {
	body, aerr := readBody(r)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	data, aerr := dataParam(body)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	// Rails: params[:data][:id].present? — null and "" do not count.
	withID := data["id"] != nil && data["id"] != ""
	s.mu.Lock()
	rec, changed, aerr := s.createCase(u, data)
	var out map[string]any
	if aerr == nil && !withID {
		out = map[string]any{"data": s.view(rec, u.canRead, changed)}
	}
	s.mu.Unlock()
	switch {
	case aerr != nil:
		writeErr(w, r, aerr)
	case withID:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// createCase inserts a case written by u. Callers hold s.mu.
func (s *Sim) createCase(u *user, data map[string]any) (*record, map[string]bool, *apiError) {
	var id string
	if v := data["id"]; v != nil && v != "" {
		sid, ok := v.(string)
		if !ok || !isLowerUUID(strings.ToLower(sid)) {
			return nil, nil, errInvalidJSON([]string{"/id"})
		}
		id = strings.ToLower(sid)
	}
	fields, sync, invalid := cleanWrite(u, data)
	if len(invalid) > 0 {
		return nil, nil, errInvalidJSON(invalid)
	}
	// Duplicates surface on save, after validation, as RecordNotUnique.
	if id != "" && s.cases[id] != nil {
		return nil, nil, errConflict()
	}
	if cid := str(fields["case_id"]); cid != "" && s.byCaseID[cid] != nil {
		return nil, nil, errConflict() // unique index on case_id
	}
	if id == "" {
		id = s.newUUID()
	}
	t := s.tick()
	d := make(map[string]any, len(fields)+16)
	for k, v := range fields {
		d[k] = mergeValue(nil, v, s.newUUID)
	}
	s.fillServerFields(d, u, t)
	rec := &record{id: id, data: d}
	s.insert(rec, t, u.name())
	s.recordSync(rec.id, u, sync, t)
	changed := make(map[string]bool, len(d))
	for k := range d {
		changed[k] = true
	}
	s.queueWebhooks("case.create", rec)
	return rec, changed, nil
}

// fillServerFields sets what Primero computes on create (Record, Ownable,
// Child#set_instance_id). Callers hold s.mu.
func (s *Sim) fillServerFields(d map[string]any, creator *user, t time.Time) {
	uid := str(d["unique_identifier"])
	if uid == "" {
		uid = s.newUUID()
		d["unique_identifier"] = uid
	}
	if str(d["case_id"]) == "" {
		d["case_id"] = uid
	}
	if str(d["short_id"]) == "" {
		d["short_id"] = uid[max(0, len(uid)-7):]
	}
	if d["case_id_display"] == nil {
		d["case_id_display"] = d["short_id"]
	}
	if str(d["created_at"]) == "" {
		d["created_at"] = formatTime(t)
	}
	if creator != nil {
		if str(d["created_by"]) == "" {
			d["created_by"] = creator.name()
		}
		if str(d["owned_by"]) == "" {
			d["owned_by"] = creator.name()
		}
		if d["created_organization"] == nil && creator.spec.AgencyUniqueID != "" {
			d["created_organization"] = creator.spec.AgencyUniqueID
		}
	}
	if owner := s.users[str(d["owned_by"])]; owner != nil {
		if d["owned_by_agency_id"] == nil && owner.spec.AgencyUniqueID != "" {
			d["owned_by_agency_id"] = owner.spec.AgencyUniqueID
		}
		if d["owned_by_groups"] == nil && len(owner.spec.UserGroupUniqueIDs) > 0 {
			d["owned_by_groups"] = anyList(owner.spec.UserGroupUniqueIDs)
		}
	}
	if d["module_id"] == nil {
		d["module_id"] = "primeromodule-cp"
	}
	if d["status"] == nil {
		d["status"] = "open"
	}
	if _, ok := d["record_state"].(bool); !ok {
		d["record_state"] = true
	}
	associate(d)
}

// insert stores a new record stamped at t. Callers hold s.mu.
func (s *Sim) insert(rec *record, t time.Time, by string) {
	s.seq++
	rec.seq = s.seq
	if str(rec.data["last_updated_at"]) == "" {
		s.touch(rec, t, by)
	} else {
		s.version++
		for k := range rec.data {
			s.fieldNames[k] = struct{}{}
		}
	}
	rec.setTimes()
	s.cases[rec.id] = rec
	if cid := str(rec.data["case_id"]); cid != "" {
		s.byCaseID[cid] = rec
	}
	s.all = append(s.all, rec)
}

// recordSync keeps a sync write-back as a log entry. Callers hold s.mu.
func (s *Sim) recordSync(id string, u *user, sync map[string]any, t time.Time) {
	if sync == nil {
		return
	}
	e := SyncEntry{At: t, User: u.name(), URL: str(sync["mark_synced_url"]), Status: str(sync["mark_synced_status"])}
	e.Synced, _ = sync["mark_synced"].(bool)
	s.syncLog[id] = append(s.syncLog[id], e)
}

// handlePatchCase is PATCH /api/v2/cases/{id}.
func (s *Sim) handlePatchCase(w http.ResponseWriter, r *http.Request, u *user) {
	body, aerr := readBody(r)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	s.mu.Lock()
	var out map[string]any
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	if aerr == nil {
		var data map[string]any
		if data, aerr = dataParam(body); aerr == nil {
			var changed map[string]bool
			if changed, aerr = s.patchCase(u, rec, data); aerr == nil {
				out = map[string]any{"data": s.view(rec, u.canRead, changed)}
			}
		}
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// patchCase merges data into rec as u and returns the fields that changed.
// Every successful PATCH is a write: last_updated_at moves even when no
// field changed. Callers hold s.mu.
func (s *Sim) patchCase(u *user, rec *record, data map[string]any) (map[string]bool, *apiError) {
	fields, sync, invalid := cleanWrite(u, data)
	if len(invalid) > 0 {
		return nil, errInvalidJSON(invalid)
	}
	oldCID := str(rec.data["case_id"])
	if cid, ok := fields["case_id"].(string); ok && cid != oldCID {
		if other := s.byCaseID[cid]; other != nil && other != rec {
			return nil, errConflict()
		}
	}
	t := s.tick()
	changed := map[string]bool{}
	for k, v := range fields {
		nv := mergeValue(rec.data[k], v, s.newUUID)
		if old, had := rec.data[k]; !had || !reflect.DeepEqual(old, nv) {
			changed[k] = true
		}
		rec.data[k] = nv
	}
	if changed["owned_by"] {
		// Ownable#update_ownership: the owner's agency and groups follow.
		if owner := s.users[str(rec.data["owned_by"])]; owner != nil {
			if _, sent := fields["owned_by_agency_id"]; !sent && owner.spec.AgencyUniqueID != "" {
				rec.data["owned_by_agency_id"] = owner.spec.AgencyUniqueID
				changed["owned_by_agency_id"] = true
			}
			if _, sent := fields["owned_by_groups"]; !sent && owner.spec.UserGroupUniqueIDs != nil {
				rec.data["owned_by_groups"] = anyList(owner.spec.UserGroupUniqueIDs)
				changed["owned_by_groups"] = true
			}
		}
	}
	if changed["case_id"] {
		delete(s.byCaseID, oldCID)
		if cid := str(rec.data["case_id"]); cid != "" {
			s.byCaseID[cid] = rec
		}
	}
	s.afterRecordChange(rec, changed, t, u.name())
	s.recordSync(rec.id, u, sync, t)
	s.queueWebhooks("case.update", rec)
	return changed, nil
}

// afterRecordChange recomputes associated_user_names and stamps the write.
// Callers hold s.mu.
func (s *Sim) afterRecordChange(rec *record, changed map[string]bool, t time.Time, by string) {
	before := rec.data["associated_user_names"]
	associate(rec.data)
	if !reflect.DeepEqual(before, rec.data["associated_user_names"]) {
		changed["associated_user_names"] = true
	}
	if str(rec.data["last_updated_by"]) != by {
		changed["last_updated_by"] = true
	}
	changed["last_updated_at"] = true
	s.touch(rec, t, by)
}

// handleDeleteCase is DELETE /api/v2/cases/{id}: a soft delete.
func (s *Sim) handleDeleteCase(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	if aerr == nil {
		changed := map[string]bool{}
		if rec.data["record_state"] != false {
			changed["record_state"] = true
		}
		rec.data["record_state"] = false
		s.afterRecordChange(rec, changed, s.tick(), u.name())
		s.queueWebhooks("case.update", rec)
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": rec.id}})
}

// handleSyncCase is POST /api/v2/cases/{id}/sync: it queues the webhooks
// for the case now, whatever their events.
func (s *Sim) handleSyncCase(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	var out map[string]any
	if aerr == nil {
		s.queueWebhooks("", rec)
		out = map[string]any{"data": s.view(rec, u.canRead, map[string]bool{})}
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
