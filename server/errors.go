package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"refbridge"
)

// Problem rules the edge itself reports (the Validator adds the profile's).
// The strings match profile.Rule* where the meaning is the same.
const (
	RuleInvalidJSON      = "invalid_json"       // the body is not JSON we can read (syntax, UTF-8, depth, shape)
	RuleUnknownField     = "unknown_field"      // a key the contract does not declare
	RuleDuplicateKey     = "duplicate_key"      // a key repeated within one JSON object (ambiguous)
	RuleType             = "type"               // a JSON type other than the contract's
	RuleRequired         = "required"           // a field that must be present is missing or blank
	RuleFormat           = "format"             // a value not in the shape the contract gives
	RuleMismatch         = "mismatch"           // request_type does not fit the route
	RuleUnknownCode      = "unknown_code"       // a code (request_type, record_type) we do not handle
	RuleDuplicateInBatch = "duplicate_in_batch" // an earlier item has the same key but other content
	RuleRefused          = "refused"            // the inbox refused the item; the exchange says why
)

// defaultRetryAfter is what a 503 asks for when the cause gave no wait.
const defaultRetryAfter = 5 * time.Second

// statusHint refines the HTTP status of an EInvalid error at the edge (405,
// 413, 415, 422); without it EInvalid is 400. It is an error so that it can
// ride in refbridge.Error.Err.
type statusHint int

func (h statusHint) Error() string { return http.StatusText(int(h)) }

// httpStatus is the one mapping from an application error to the HTTP status
// the edge answers with.
func httpStatus(err error) int {
	switch refbridge.ErrorCodeOf(err) {
	case refbridge.EInvalid:
		var h statusHint
		if errors.As(err, &h) {
			return int(h)
		}
		return http.StatusBadRequest
	case refbridge.EUnauthorized:
		return http.StatusUnauthorized
	case refbridge.EForbidden:
		return http.StatusForbidden
	case refbridge.ENotFound:
		return http.StatusNotFound
	case refbridge.EConflict:
		return http.StatusConflict
	case refbridge.ERateLimited:
		return http.StatusTooManyRequests
	case refbridge.ETransient, refbridge.EStoreFull:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code     refbridge.ErrorCode `json:"code"`
	Message  string              `json:"message"`
	Problems []refbridge.Problem `json:"problems,omitempty"`
}

// fail answers with err and records its code for the request log.
func (s *Server) fail(w http.ResponseWriter, st *reqState, err *refbridge.Error) {
	st.code = err.Code
	writeError(w, err)
}

// writeError writes err as {"error":{…}} with the status httpStatus gives and,
// for 429 and 503, a Retry-After. Only Code, Message and Problems are
// written: Message and Problems are built by this package or the Validator
// and never carry a person's data; a cause in Err is never shown.
func writeError(w http.ResponseWriter, err *refbridge.Error) {
	status := httpStatus(err)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds(err.RetryAfter))
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: err.Code, Message: err.Message, Problems: err.Problems}})
}

func retryAfterSeconds(d time.Duration) string {
	if d <= 0 {
		d = defaultRetryAfter
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own types are written; this is a programming error
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// invalidBody is a 400 with one problem.
func invalidBody(field, detail string) *refbridge.Error {
	return &refbridge.Error{Code: refbridge.EInvalid, Message: "the request cannot be read",
		Problems: []refbridge.Problem{{Field: field, Rule: RuleInvalidJSON, Detail: detail}}}
}

// unprocessable is a 422: the request was read but is not one we act on.
func unprocessable(message string, problems ...refbridge.Problem) *refbridge.Error {
	return &refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(http.StatusUnprocessableEntity),
		Message: message, Problems: problems}
}

// dependencyError turns an Inbox or Trigger failure into what the edge may
// say: a retryable 503/429 when the cause is transient (a cancelled or timed
// out context counts) or the store is full, otherwise a 500. The cause's
// text is never shown.
func dependencyError(err error, what string) *refbridge.Error {
	code := refbridge.ErrorCodeOf(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code = refbridge.ETransient
	}
	switch code {
	case refbridge.ETransient, refbridge.ERateLimited:
		return &refbridge.Error{Code: code, Message: what + " is temporarily unavailable; nothing was acknowledged, send again later",
			RetryAfter: refbridge.ErrorRetryAfter(err)}
	case refbridge.EStoreFull:
		return &refbridge.Error{Code: code, Message: what + " cannot store anything now (storage full); nothing was acknowledged, send again later"}
	}
	return &refbridge.Error{Code: refbridge.EInternal, Message: what + " failed; nothing was acknowledged"}
}

func itoa(n int) string { return strconv.Itoa(n) }

func byteCount(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
