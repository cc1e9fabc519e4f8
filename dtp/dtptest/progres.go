package dtptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"refbridge"
)

// maxReply bounds the bridge's answer read by the proGres-side posts.
const maxReply = 1 << 20

// Reply is the bridge's answer to a message the simulator posted as proGres.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// PostInterventions posts batch to the bridge's inbox as DTP does for flow
// F1 (PrimeroOutgoingReferral), with `Authorization: Bearer bearerToken`
// (none when the token is empty). The batch is sent as given: set
// RequestType yourself, or leave it empty to test the bridge's handling of
// the sample that lacks it. An error means no answer was received.
func (s *Sim) PostInterventions(ctx context.Context, bridgeURL, bearerToken string, batch refbridge.InterventionBatch) (*Reply, error) {
	body, err := json.Marshal(batch)
	if err != nil {
		return nil, fmt.Errorf("dtptest: encode interventions: %w", err)
	}
	return s.PostJSON(ctx, bridgeURL, bearerToken, body)
}

// PostDecisions posts batch to the bridge's inbox as DTP does for flow F2d
// (PrimeroIncomingReferralDecision); see PostInterventions.
func (s *Sim) PostDecisions(ctx context.Context, bridgeURL, bearerToken string, batch refbridge.DecisionBatch) (*Reply, error) {
	body, err := json.Marshal(batch)
	if err != nil {
		return nil, fmt.Errorf("dtptest: encode decisions: %w", err)
	}
	return s.PostJSON(ctx, bridgeURL, bearerToken, body)
}

// PostJSON posts body unchanged, for malformed or hand-made messages.
func (s *Sim) PostJSON(ctx context.Context, bridgeURL, bearerToken string, body []byte) (*Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bridgeURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dtptest: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	resp, err := s.bridge.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dtptest: post to bridge: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("dtptest: read bridge reply: %w", err)
	}
	return &Reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}
