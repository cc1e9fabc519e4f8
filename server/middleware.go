package server

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"refbridge"
)

// handlerFunc is a route handler; st collects what the request log reports.
type handlerFunc func(w http.ResponseWriter, r *http.Request, st *reqState)

// bodyHandler is a handler for a JSON body that has passed the transport
// checks: valid UTF-8, syntactically valid JSON, within the size limit.
type bodyHandler func(w http.ResponseWriter, r *http.Request, st *reqState, body []byte)

// reqState is what one request's log line reports. Handlers fill it in;
// only IDs, codes and counts go here, never a value from a body.
type reqState struct {
	id          string
	route       string
	requestType string
	recordID    string // Primero record id (a UUID) of a webhook
	code        refbridge.ErrorCode
	counts      *counts
}

type reqStateKey struct{}

// statusWriter remembers the status written, for the log and for recovery.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// common wraps every route: security headers, a request id, recovery from
// panics (answered as a JSON 500 without the panic value, which may hold
// request data) and one log line per request.
func (s *Server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		st := &reqState{id: requestID(r.Header.Get("X-Request-Id"))}
		h.Set("X-Request-Id", st.id)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // net/http's sentinel for an aborted response: let it through
					panic(v)
				}
				s.log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
					slog.String("request_id", st.id), slog.String("route", st.route))
				if sw.status == 0 {
					st.code = refbridge.EInternal
					writeError(sw, refbridge.Errorf(refbridge.EInternal, "internal error"))
				}
			}
			s.logRequest(r.Context(), st, sw.status, s.now().Sub(start))
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st)))
	})
}

// requestIDFrom returns the request id of the request ctx belongs to.
func requestIDFrom(ctx context.Context) string {
	if st, ok := ctx.Value(reqStateKey{}).(*reqState); ok {
		return st.id
	}
	return ""
}

// endpoint adapts a handlerFunc, recording the matched route pattern.
func (s *Server) endpoint(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, _ := r.Context().Value(reqStateKey{}).(*reqState)
		if st == nil {
			st = &reqState{id: requestID("")}
		}
		st.route = r.Pattern
		h(w, r, st)
	})
}

func (s *Server) logRequest(ctx context.Context, st *reqState, status int, d time.Duration) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}
	route := st.route
	if route == "" || route == "/" {
		route = "unmatched" // the raw path is the client's text, not ours to log
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", d),
	}
	if st.requestType != "" {
		attrs = append(attrs, slog.String("request_type", st.requestType))
	}
	if st.recordID != "" {
		attrs = append(attrs, slog.String("record_id", st.recordID))
	}
	if st.code != "" {
		attrs = append(attrs, slog.String("error_code", string(st.code)))
	}
	if c := st.counts; c != nil {
		attrs = append(attrs, slog.Int("received", c.Received), slog.Int("stored", c.stored),
			slog.Int("accepted", c.Accepted), slog.Int("duplicate", c.Duplicate),
			slog.Int("updated", c.Updated), slog.Int("rejected", c.Rejected))
	}
	s.log.LogAttrs(ctx, level, "http request", attrs...)
}

// requestID keeps a caller's X-Request-Id when it is a short token (so logs
// correlate across systems) and otherwise makes a random one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 64 {
		ok := true
		for i := range n {
			c := given[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return given
		}
	}
	return strings.ToLower(rand.Text())
}

// requireBearer admits a request only with one Authorization header
// "Bearer <token>" naming a current DTP token.
func (s *Server) requireBearer(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, st *reqState) {
		token, ok := bearerToken(r.Header.Values("Authorization"))
		if !s.tokens.Load().match(token) || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="refbridge"`)
			s.fail(w, st, refbridge.Errorf(refbridge.EUnauthorized, "a valid bearer token is required"))
			return
		}
		next(w, r, st)
	}
}

func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requireWebhookKey admits a Primero webhook presenting a configured key as
// X-Api-Key or, when that header is absent, as the HTTP Basic password.
func (s *Server) requireWebhookKey(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, st *reqState) {
		key, ok := "", false
		if vs := r.Header.Values("X-Api-Key"); len(vs) > 0 {
			key, ok = strings.TrimSpace(vs[0]), len(vs) == 1
		} else if _, pass, basic := r.BasicAuth(); basic {
			key, ok = pass, true
		}
		if !s.webhookKeys.Load().match(key) || !ok || key == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="refbridge"`)
			s.fail(w, st, refbridge.Errorf(refbridge.EUnauthorized, "a valid api key is required"))
			return
		}
		next(w, r, st)
	}
}

// requireJSON checks the media type (415), reads the body within the limit
// (413), and refuses a body that is not UTF-8 JSON with nothing after it (400).
func (s *Server) requireJSON(next bodyHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, st *reqState) {
		if !isJSONMediaType(r.Header.Get("Content-Type")) {
			w.Header().Set("Accept-Post", "application/json")
			s.fail(w, st, &refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(http.StatusUnsupportedMediaType),
				Message: "the body must be sent as Content-Type: application/json (UTF-8)"})
			return
		}
		tooLarge := &refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(http.StatusRequestEntityTooLarge),
			Message: "the body is larger than the limit of " + byteCount(s.maxBody)}
		if r.ContentLength > s.maxBody {
			s.fail(w, st, tooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			s.fail(w, st, tooLarge)
			return
		case err != nil:
			s.fail(w, st, invalidBody("body", "could not be read completely"))
			return
		}
		if p, ok := checkSyntax(body); !ok {
			s.fail(w, st, &refbridge.Error{Code: refbridge.EInvalid, Message: "the body is not valid JSON",
				Problems: []refbridge.Problem{p}})
			return
		}
		next(w, r, st, body)
	}
}

// isJSONMediaType accepts application/json with no charset or charset=utf-8.
func isJSONMediaType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// checkSyntax refuses invalid UTF-8 and anything json.Valid refuses
// (including trailing data), with the byte offset but never the bytes.
func checkSyntax(body []byte) (refbridge.Problem, bool) {
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return refbridge.Problem{Field: "$", Rule: RuleInvalidJSON,
			Detail: "the body is not valid UTF-8 (first bad byte at offset " + itoa(off) + ")"}, false
	}
	if len(body) == 0 {
		return refbridge.Problem{Field: "$", Rule: RuleInvalidJSON, Detail: "the body is empty"}, false
	}
	if !jsonValid(body) {
		return refbridge.Problem{Field: "$", Rule: RuleInvalidJSON,
			Detail: "the body is not valid JSON (syntax error at byte offset " + itoa(syntaxOffset(body)) + ")"}, false
	}
	return refbridge.Problem{}, true
}

func methodNotAllowed(allow string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, st *reqState) {
		w.Header().Set("Allow", allow)
		st.code = refbridge.EInvalid
		writeError(w, &refbridge.Error{Code: refbridge.EInvalid, Err: statusHint(http.StatusMethodNotAllowed),
			Message: "this route takes " + allow})
	}
}

func notFound(w http.ResponseWriter, _ *http.Request, st *reqState) {
	st.code = refbridge.ENotFound
	writeError(w, refbridge.Errorf(refbridge.ENotFound, "no such route"))
}
