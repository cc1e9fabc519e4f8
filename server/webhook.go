package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"refbridge"
)

// triggerTimeout bounds Trigger.CaseChanged: the webhook should answer in
// well under Primero's job timeout, and polling is the safety net anyway.
const triggerTimeout = 5 * time.Second

// handleWebhook takes Primero's outbound webhook
// {"data":{"record_id":"<uuid>","record_type":"case",<case fields>…}} and
// asks the engine to process that case now. Only record_id and record_type
// are read; the other fields are a child's data and are neither decoded,
// kept, logged nor echoed.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, st *reqState, body []byte) {
	issues, tooDeep := scan(body, nil)
	switch {
	case tooDeep:
		s.fail(w, st, invalidBody("$", "the body nests deeper than "+itoa(maxDepth)+" levels"))
		return
	case len(issues) > 0: // only repeated keys, which would make record_id ambiguous
		s.fail(w, st, invalidBody("$", "the body repeats a key within one object"))
		return
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		s.fail(w, st, invalidBody("$", `the body must be a JSON object {"data":{…}}`))
		return
	}
	var data map[string]json.RawMessage
	if raw, ok := top["data"]; !ok || json.Unmarshal(raw, &data) != nil || data == nil {
		s.fail(w, st, unprocessable("the webhook has no data object",
			refbridge.Problem{Field: "data", Rule: RuleRequired, Detail: "must be an object holding record_id and record_type"}))
		return
	}
	var recordType, recordID string
	if json.Unmarshal(data["record_type"], &recordType) != nil || recordType == "" {
		s.fail(w, st, unprocessable("the webhook does not say which kind of record changed",
			refbridge.Problem{Field: "data.record_type", Rule: RuleRequired, Detail: `must be the string "case"`}))
		return
	}
	if recordType != "case" {
		s.fail(w, st, unprocessable("only case webhooks are handled",
			refbridge.Problem{Field: "data.record_type", Rule: RuleUnknownCode,
				Detail: displayCode(recordType, primeroRecordTypes()...) + ` is not handled; refbridge only acts on "case"`}))
		return
	}
	if raw, ok := data["record_id"]; !ok || string(raw) == "null" {
		s.fail(w, st, unprocessable("the webhook does not name the case",
			refbridge.Problem{Field: "data.record_id", Rule: RuleRequired, Detail: "must be the case's record id (a UUID)"}))
		return
	}
	if json.Unmarshal(data["record_id"], &recordID) != nil || !isUUID(recordID) {
		s.fail(w, st, unprocessable("the webhook does not name the case",
			refbridge.Problem{Field: "data.record_id", Rule: RuleFormat, Detail: "must be the case's record id (a UUID)"}))
		return
	}
	st.recordID = recordID
	ctx, cancel := context.WithTimeout(r.Context(), triggerTimeout)
	defer cancel()
	if err := s.trigger.CaseChanged(ctx, recordID); err != nil {
		// As for the inbox, only the cause's code is logged.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook trigger failed",
			slog.String("request_id", st.id), slog.String("record_id", recordID),
			slog.String("error_code", string(refbridge.ErrorCodeOf(err))))
		s.fail(w, st, dependencyError(err, "queueing the case"))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "record_id": recordID})
}

// primeroRecordTypes are Primero's record types, the ones a detail may name.
func primeroRecordTypes() []string {
	return []string{"case", "incident", "tracing_request", "family", "registry_record", "child", "potential_match"}
}

// isUUID reports whether s is a UUID in its 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
