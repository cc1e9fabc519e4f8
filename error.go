package refbridge

import (
	"errors"
	"fmt"
	"time"
)

// ErrorCode is the machine-readable class of an application error. Callers
// branch on the code, never on message text; the edge maps it to an HTTP status.
type ErrorCode string

// Application error codes.
const (
	ENotFound     ErrorCode = "not_found"
	EUnauthorized ErrorCode = "unauthorized"
	EForbidden    ErrorCode = "forbidden"
	EConflict     ErrorCode = "conflict"
	ERateLimited  ErrorCode = "rate_limited"
	EInvalid      ErrorCode = "invalid"
	ETransient    ErrorCode = "transient"
	// EStoreFull: refbridge's own store cannot take a write because its
	// disk (or database) is full. Nothing was stored; the same call succeeds
	// once an operator frees space, so it is retryable.
	EStoreFull ErrorCode = "store_full"
	EInternal  ErrorCode = "internal"
)

// Problem is one precise reason an input was refused: which field, which rule,
// and a plain sentence. Detail must never quote a personal value.
type Problem struct {
	Field  string `json:"field"`
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Error is the one application error type. Every client and every layer returns
// it (possibly wrapped) so that callers can classify failures by Code.
type Error struct {
	Code ErrorCode
	// Message is safe to log and to show an operator: IDs and codes only.
	Message string
	// Peer names the remote system the error came from ("primero", "dtp"), if any.
	Peer string
	// Status is the peer's HTTP status, 0 when no response was received.
	Status int
	// RetryAfter is the wait the peer asked for (rate_limited, transient).
	RetryAfter time.Duration
	// Problems lists per-field reasons for EInvalid.
	Problems []Problem
	// Err is the underlying cause, if any.
	Err error
}

// Error implements the error interface.
func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Peer != "" {
		msg = e.Peer + ": " + msg
	}
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause so errors.Is/As see through the application error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an application error with the given code and formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCodeOf returns the code of the first application error in err's chain,
// EInternal for any other error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorRetryAfter returns the wait requested by the peer, or 0.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorProblems returns the per-field problems of an EInvalid error.
func ErrorProblems(err error) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}

// IsRetryable reports whether trying the same call again later may succeed.
func IsRetryable(err error) bool {
	switch ErrorCodeOf(err) {
	case ETransient, ERateLimited, EStoreFull:
		return true
	}
	return false
}
