package store

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"refbridge"
)

// resumePoint is where a dead exchange was when it was dead-lettered: the
// engine's steps decode the payload by state (and, in flow F2, by reason),
// so a retry puts all three back as they were.
type resumePoint struct {
	State  refbridge.ExchangeState `json:"state"`
	Reason string                  `json:"reason"`
	// Problems is the problems column as it was (JSON, or "").
	Problems string `json:"problems"`
}

func (r row) resumePoint() (resumePoint, error) {
	var rp resumePoint
	if err := json.Unmarshal([]byte(r.resume), &rp); err != nil {
		return rp, fmt.Errorf("exchange %s: resume column: %w", r.id, err)
	}
	if !knownState(rp.State) {
		return rp, fmt.Errorf("exchange %s: resume state %q unknown", r.id, rp.State)
	}
	return rp, nil
}

// operatorReason is the form of the reason a focal point gives for a retry
// or discard: a code from the console's list, never free text, because it
// goes into the audit trail, which is never purged and must hold no
// personal value.
var operatorReason = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

// checkOperator validates who acts on a dead exchange and why.
func checkOperator(id, actor, reason string) error {
	switch {
	case actor == "":
		return refbridge.Errorf(refbridge.EInvalid, "exchange %s: the acting account is required", id)
	case !operatorReason.MatchString(reason):
		return refbridge.Errorf(refbridge.EInvalid, "exchange %s: a reason code (a-z, 0-9, _) is required", id)
	}
	return nil
}

// ReasonDiscarded is the Reason of an exchange a focal point discarded.
const ReasonDiscarded = "discarded"

// Retry puts a dead exchange back in the state, reason and problems it was
// dead-lettered from, with its retry budget reset and a ProcessExchange job
// enqueued, in one transaction that also records a "retried" audit event
// (Actor: the focal point's account, Reason: their reason code, Outcome:
// the state resumed). An exchange that is not dead is EConflict (two focal
// points pressing retry at once: one wins); one dead-lettered before the
// store recorded where (an older version) is EConflict too, since resuming
// it in a guessed state could misread its payload.
func (db *DB) Retry(ctx context.Context, id, actor, reason string) (refbridge.Exchange, error) {
	if err := checkOperator(id, actor, reason); err != nil {
		return refbridge.Exchange{}, err
	}
	c := Change{From: []refbridge.ExchangeState{refbridge.StateDead}, AuditKind: refbridge.AuditRetried, Actor: actor,
		Peer: "console", Enqueue: true, resume: true, auditReason: reason}
	return db.operatorChange(ctx, id, c)
}

// Discard ends a dead exchange: it becomes failed with reason "discarded",
// its payload is purged (with Retention 0; later by Purge otherwise), and a
// "discarded" audit event records the focal point and their reason code,
// in one transaction. An exchange that is not dead is EConflict.
func (db *DB) Discard(ctx context.Context, id, actor, reason string) (refbridge.Exchange, error) {
	if err := checkOperator(id, actor, reason); err != nil {
		return refbridge.Exchange{}, err
	}
	c := Change{From: []refbridge.ExchangeState{refbridge.StateDead}, To: refbridge.StateFailed, Reason: ReasonDiscarded,
		AuditKind: refbridge.AuditDiscarded, Actor: actor, Peer: "console", auditReason: reason}
	return db.operatorChange(ctx, id, c)
}

func (db *DB) operatorChange(ctx context.Context, id string, c Change) (refbridge.Exchange, error) {
	next, err := db.groupTransition(ctx, id, c, "")
	if err != nil {
		return refbridge.Exchange{}, errStore("operator change", err)
	}
	ex, err := next.exchange()
	if err != nil {
		return refbridge.Exchange{}, errStore("operator change", err)
	}
	return ex, nil
}
