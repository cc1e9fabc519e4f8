package primerotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
)

// Write is one create or update request as the simulator received it.
type Write struct {
	// Pattern is the route (PatternCreateCase, PatternPatchCase…).
	Pattern string
	// Body is the request body exactly as received (at most maxBody bytes).
	Body json.RawMessage
}

// recordWrite keeps r's body for Writes and gives the handler an unread copy.
func (s *Sim) recordWrite(pattern string, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return // the handler sees the truncated body and answers for it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, Write{Pattern: pattern, Body: b})
}

// Writes returns the create and update requests received so far, in order,
// when Options.RecordWrites is set (nil otherwise).
func (s *Sim) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}
