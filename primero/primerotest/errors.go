package primerotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"refbridge"
)

// apiError is a refusal in the shape Primero renders it
// (services/error_service.rb): one or more entries of the error envelope, or
// a body of its own for the Devise and Rack::Attack answers that bypass it.
type apiError struct {
	status  int
	message any // string, or []string for model validation errors
	detail  any // omitted when nil; a string or a list of JSON pointers
	more    []*apiError
	// raw, when set, is written as the JSON body instead of the envelope.
	raw any
	// text, when set, is written as a text/plain body instead of the envelope.
	text string
}

func errNotFound(detail string) *apiError {
	return &apiError{status: http.StatusNotFound, message: "Not Found", detail: detail}
}

func errForbidden() *apiError {
	return &apiError{status: http.StatusForbidden, message: "Forbidden"}
}

func errConflict() *apiError {
	return &apiError{status: http.StatusConflict, message: "Conflict: A record with this id already exists"}
}

// errParamMissing is Rails' ActionController::ParameterMissing for `data`.
func errParamMissing() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, message: "param is missing or the value is empty: data"}
}

// errInvalidJSON is the record JSON-schema failure; detail lists pointers.
func errInvalidJSON(pointers []string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, message: "Invalid Record JSON", detail: pointers}
}

// errModel is one ActiveRecord validation error: detail is the attribute
// and message an array of untranslated keys.
func errModel(field string, messages ...string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, message: messages, detail: field}
}

type envelopeEntry struct {
	Status   int    `json:"status"`
	Resource string `json:"resource"`
	Message  any    `json:"message"`
	Detail   any    `json:"detail,omitempty"`
}

// writeErr renders e for the request r. 401s always carry Primero's
// WWW-Authenticate header (app/middleware/www_authenticate.rb).
func writeErr(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="Primero" charset="UTF8"`)
	}
	if e.text != "" {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(e.status)
		io.WriteString(w, e.text)
		return
	}
	if e.raw != nil {
		writeJSON(w, e.status, e.raw)
		return
	}
	entries := []envelopeEntry{}
	for _, x := range append([]*apiError{e}, e.more...) {
		entries = append(entries, envelopeEntry{Status: x.status, Resource: r.URL.Path, Message: x.message, Detail: x.detail})
	}
	writeJSON(w, e.status, map[string]any{"errors": entries})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only values built by the simulator are encoded; failing here is a bug.
		http.Error(w, `{"errors":[{"status":500,"message":"Internal Server Error"}]}`, http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// maxBody bounds a request body; Primero sits behind nginx with a similar limit.
const maxBody = 32 << 20

// readBody decodes a JSON object body. Numbers keep their integer-ness (see
// normalize). An empty body decodes to an empty object, as Rails does.
func readBody(r *http.Request) (map[string]any, *apiError) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, message: "Bad Request"}
	}
	if len(b) > maxBody {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, message: "Payload Too Large"}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		// Rails raises ParseError here; it reaches the client as 400.
		return nil, &apiError{status: http.StatusBadRequest, message: "Bad Request", detail: "JSON parse error"}
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, &apiError{status: http.StatusBadRequest, message: "Bad Request", detail: "JSON parse error"}
	}
	return m, nil
}

// dataParam returns body["data"] as an object, or ParameterMissing.
func dataParam(body map[string]any) (map[string]any, *apiError) {
	d, ok := body["data"].(map[string]any)
	if !ok || len(d) == 0 {
		return nil, errParamMissing()
	}
	return d, nil
}

// asDomainError turns a refusal into the application error the exported
// helpers return, classified like the client would classify the status.
func asDomainError(e *apiError) error {
	if e == nil {
		return nil
	}
	code := refbridge.EInternal
	switch e.status {
	case http.StatusNotFound:
		code = refbridge.ENotFound
	case http.StatusForbidden:
		code = refbridge.EForbidden
	case http.StatusConflict:
		code = refbridge.EConflict
	case http.StatusUnprocessableEntity, http.StatusBadRequest:
		code = refbridge.EInvalid
	case http.StatusUnauthorized:
		code = refbridge.EUnauthorized
	}
	err := &refbridge.Error{Code: code, Peer: "primero-sim", Status: e.status}
	for _, x := range append([]*apiError{e}, e.more...) {
		p := refbridge.Problem{Rule: messageText(x.message)}
		switch d := x.detail.(type) {
		case string:
			p.Field = d
		case []string:
			if len(d) > 0 {
				p.Field = d[0]
			}
		}
		err.Problems = append(err.Problems, p)
	}
	err.Message = messageText(e.message)
	return err
}

func messageText(m any) string {
	switch v := m.(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
