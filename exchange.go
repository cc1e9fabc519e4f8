package refbridge

import "time"

// Flow names one of the four directions a referral or decision travels
// (DESIGN.md "The four flows").
type Flow string

// The four flows.
const (
	// FlowIntervention (F1): a proGres intervention becomes a Primero case service.
	FlowIntervention Flow = "F1"
	// FlowServiceDecision (F1d): a Primero worker's decision on that service goes to DTP.
	FlowServiceDecision Flow = "F1d"
	// FlowReferral (F2): a Primero service referred to UNHCR goes to DTP.
	FlowReferral Flow = "F2"
	// FlowReferralDecision (F2d): UNHCR's decision on it updates the Primero referral.
	FlowReferralDecision Flow = "F2d"
)

// Flows lists every flow in the order DESIGN.md gives them.
func Flows() []Flow {
	return []Flow{FlowIntervention, FlowServiceDecision, FlowReferral, FlowReferralDecision}
}

// ExchangeState is where an exchange is in its life. received → mapped →
// delivered → done is the happy path; held waits for a person or for
// consent; rejected → failed is refused input (the sender is told why, then
// the exchange ends); dead means the retry budget is spent and the focal
// point must retry or discard it.
type ExchangeState string

// Exchange states.
const (
	StateReceived  ExchangeState = "received"
	StateMapped    ExchangeState = "mapped"
	StateDelivered ExchangeState = "delivered"
	StateDone      ExchangeState = "done"
	StateHeld      ExchangeState = "held"
	StateRejected  ExchangeState = "rejected"
	StateFailed    ExchangeState = "failed"
	StateDead      ExchangeState = "dead"
)

// Terminal reports whether the exchange is over: its payload may then be
// purged. Dead is not terminal: the focal point may still retry it, which
// needs the payload; discarding it makes it failed.
func (s ExchangeState) Terminal() bool {
	return s == StateDone || s == StateFailed
}

// Exchange is one referral or decision travelling in one flow, keyed by its
// natural idempotency key so that re-delivery, re-polling and crash-restart
// converge on the same row.
type Exchange struct {
	ID   string
	Flow Flow
	// Key is the idempotency key: the intervention number (F1), the
	// intervention number and decision (F1d), the org-referral id
	// "<case_id>#<12>" (F2, F2d).
	Key string
	// ContentHash tells a re-delivery (same hash) from an update (new hash).
	ContentHash string
	State       ExchangeState
	// Reason is a machine code explaining held/failed/dead (consent_missing,
	// multiple_cases, validation, retry_budget…), never free text.
	Reason string
	// Problems are the precise reasons input was refused (no personal values).
	Problems []Problem
	Attempts int
	// LastError is the application error code of the last failed attempt.
	LastError ErrorCode
	// PeerRef identifies the effect at the peer: the Primero case record id,
	// the referral id, the DTP org-referral id.
	PeerRef string
	// Payload holds the message with personal data; encrypted at rest and
	// nil once purged.
	Payload   []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	PurgedAt  time.Time
	// DeadFrom is, for a dead exchange, the state it was dead-lettered
	// from: where a retry resumes it. Empty otherwise.
	DeadFrom ExchangeState
}

// Inbound is one message refbridge has taken responsibility for: an
// intervention or decision DTP posted, or a referral or decision a poller
// found in Primero. The store records it durably before anyone answers 2xx.
type Inbound struct {
	Flow Flow
	Key  string
	// ContentHash of the canonical message: the same key and hash is a
	// re-delivery, the same key with a new hash an update.
	ContentHash string
	// Payload is the message (personal data; encrypted at rest).
	Payload []byte
	// State is StateReceived, or StateRejected when the edge already refused
	// the content (Problems say why; the failure callback still goes out).
	State    ExchangeState
	Problems []Problem
	// PeerRef is known up front for polled items (e.g. the Primero case id).
	PeerRef string
	// CreateOnly stores the item only if no exchange has its key; an existing
	// one is left as it is (IntakeDuplicate) whatever its content. A poll's
	// view of a record can be older than the exchange by the time it is
	// stored, so the engine changes existing exchanges with preconditions on
	// their state and content instead of through intake.
	CreateOnly bool
}

// IntakeOutcome says what the store did with one Inbound.
type IntakeOutcome string

// Intake outcomes.
const (
	IntakeAccepted  IntakeOutcome = "accepted"  // new exchange, queued
	IntakeDuplicate IntakeOutcome = "duplicate" // same key and content: acknowledged, not re-processed
	IntakeUpdated   IntakeOutcome = "updated"   // same key, new content: processed again
	IntakeRejected  IntakeOutcome = "rejected"  // stored as rejected; the problems go back to the sender
)

// Intake is the result of storing one Inbound.
type Intake struct {
	ExchangeID string
	Outcome    IntakeOutcome
}
