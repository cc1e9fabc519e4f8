package engine

import (
	"context"
	"strings"
	"time"

	"refbridge"
	"refbridge/egress"
	"refbridge/mapping"
	"refbridge/profile"
	"refbridge/store"
)

// stepServiceDecision runs flow F1d: a Primero worker's decision on a
// service that came from proGres, already mapped by the poller, goes to DTP.
func (e *Engine) stepServiceDecision(ctx context.Context, ex refbridge.Exchange) (next, error) {
	switch ex.State {
	case refbridge.StateReceived:
		st, err := decode[outgoing[refbridge.InterventionStatus]](ex)
		if err != nil {
			return stop, err
		}
		msg := egress.Filter(e.p, st.Agency, st.Message)
		if err := e.sendStatus(ctx, msg); err != nil {
			return stop, err
		}
		actor := ""
		if st.Message.PrimeroUser != nil {
			actor = primeroActor(*st.Message.PrimeroUser)
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateDone, Peer: "dtp", Actor: actor, Fields: msg.Fields()})
	case refbridge.StateRejected:
		// The decision cannot be expressed to proGres (e.g. an unmapped
		// code); it stays visible to the focal point with its problems.
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateFailed, Reason: ex.Reason, Problems: ex.Problems})
	}
	return stop, nil
}

// referralRef is what an F2 exchange keeps once its payload has gone to
// DTP: where the referral lives in Primero, and nothing about the child.
type referralRef struct {
	CaseRecordID string `json:"case_record_id"`
	ReferralID   string `json:"referral_id"`
}

func (r referralRef) String() string { return r.CaseRecordID + "/" + r.ReferralID }

func parseReferralRef(s string) (referralRef, bool) {
	c, r, ok := strings.Cut(s, "/")
	return referralRef{CaseRecordID: c, ReferralID: r}, ok && c != "" && r != ""
}

// stepReferral runs flow F2: a Primero service referred to UNHCR goes to
// DTP, and the case worker sees in Primero that it did.
func (e *Engine) stepReferral(ctx context.Context, ex refbridge.Exchange) (next, error) {
	ref, _ := parseReferralRef(ex.PeerRef)
	switch ex.State {
	case refbridge.StateReceived:
		in, err := decode[mapping.ReferralInput](ex)
		if err != nil {
			return stop, err
		}
		if in.Users, err = e.contactUsers(ctx, in.Case.OwnedBy); err != nil {
			return stop, err
		}
		ref := referralRef{CaseRecordID: in.Case.ID, ReferralID: in.Referral.ID}
		actor := primeroActor(in.Referral.TransitionedBy)
		consent := e.p.Consent(profile.PrimeroToProgres, profile.ConsentInput{Case: &in.Case, Referral: &in.Referral})
		out, problems := mapping.CaseToDTPReferral(e.p, in)
		switch {
		case hasRule(problems, profile.RuleConsentMissing):
			return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateHeld, Reason: ReasonConsentMissing, Problems: problems, PeerRef: ref.String(), Actor: actor})
		case len(problems) > 0:
			return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateRejected, Reason: ReasonInvalidInput, Problems: problems, PeerRef: ref.String()})
		}
		// Who permitted the share: the case worker who referred it, with
		// consent on the case or (where the profile allows) an override.
		// The mapping restricted it for the agency that owns the case; the
		// same allow-list applies again when it is sent.
		mapped := outgoing[refbridge.DTPReferral]{Message: out, Agency: in.Case.OwnedByAgencyID}
		return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateMapped, Payload: encode(mapped), PeerRef: ref.String(),
			AuditKind: refbridge.AuditConsentChecked, Actor: actor, Override: consent.Overridden})

	case refbridge.StateMapped:
		out, err := decode[outgoing[refbridge.DTPReferral]](ex)
		if err != nil {
			return stop, err
		}
		msg := egress.Filter(e.p, out.Agency, out.Message)
		if _, err := call(e.dtpCircuit, func() (struct{}, error) { return struct{}{}, e.dtp.SendReferral(ctx, msg) }); err != nil {
			return stop, err
		}
		// Keep only where the referral lives: the child's data has left. DTP
		// has it now, so this is recorded even if the case changed meanwhile
		// (no content precondition): a referral is never sent twice.
		delivered := store.Change{
			From: []refbridge.ExchangeState{refbridge.StateMapped, refbridge.StateReceived, refbridge.StateHeld, refbridge.StateRejected},
			To:   refbridge.StateDelivered, Reason: ReasonSyncPending, Payload: encode(ref),
			AuditKind: refbridge.AuditShared, Peer: "dtp", Actor: primeroActor(out.Message.PrimeroUser), Fields: msg.Fields()}
		if _, err = e.store.Transition(ctx, ex.ID, delivered); err != nil {
			return stop, storeError{err}
		}
		e.observe(ex, delivered)
		return continue_, nil

	case refbridge.StateDelivered:
		if ex.Reason != ReasonSyncPending {
			return stop, nil // waiting for UNHCR's decision (flow F2d), or consent withdrawn
		}
		if err := e.markSynced(ctx, ref.CaseRecordID, refbridge.SyncStatus{Synced: true, Status: "referral delivered to UNHCR (" + ex.Key + ")"}); err != nil {
			return stop, err
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateDelivered, Reason: ReasonAwaitingDecision, IfReason: ReasonSyncPending})

	case refbridge.StateRejected:
		if ref.CaseRecordID != "" {
			if err := e.markSynced(ctx, ref.CaseRecordID, refbridge.SyncStatus{Synced: false, Status: "referral not sent to UNHCR: " + rules(ex.Problems)}); err != nil {
				return stop, err
			}
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateFailed, Reason: ex.Reason, Problems: ex.Problems})
	}
	return stop, nil
}

func (e *Engine) markSynced(ctx context.Context, caseID string, s refbridge.SyncStatus) error {
	// The sync status has a fixed allow-list; no agency narrows it.
	msg := egress.Filter(e.p, "", s)
	_, err := call(e.primeroCircuit, func() (struct{}, error) { return struct{}{}, e.primero.MarkSynced(ctx, caseID, msg) })
	return err
}

// stepReferralDecision runs flow F2d: UNHCR's decision on a referral that
// refbridge sent updates the Primero referral.
func (e *Engine) stepReferralDecision(ctx context.Context, ex refbridge.Exchange) (next, error) {
	switch ex.State {
	case refbridge.StateReceived:
		d, err := decode[refbridge.ReferralDecision](ex)
		if err != nil {
			return stop, err
		}
		dp, problems := mapping.DTPDecisionToReferral(e.p, d)
		if len(problems) > 0 {
			return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateRejected, Reason: ReasonInvalidInput, Problems: problems})
		}
		ref, sent, err := e.findReferral(ctx, ex.Key, dp)
		if err != nil {
			return stop, err
		}
		if sent.State == refbridge.StateReceived || sent.State == refbridge.StateMapped {
			// DTP has the referral but its own exchange has not recorded
			// that yet (it is between the send and the commit, or restarting):
			// wait, so that the referral ends with its decision, not after it.
			return stop, &retryLater{After: time.Second}
		}
		if sent.Reason == ReasonConsentWithdrawn {
			return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateHeld, Reason: ReasonConsentWithdrawn, PeerRef: ref.String(), Problems: []refbridge.Problem{{
				Field: "progres_orgreferralid", Rule: ReasonConsentWithdrawn,
				Detail: "consent was withdrawn in Primero after the referral was sent; nothing more about it is exchanged",
			}}})
		}
		if ref.ReferralID == "" {
			return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateHeld, Reason: ReasonUnknownReferral, Problems: []refbridge.Problem{{
				Field: "progres_orgreferralid", Rule: ReasonUnknownReferral,
				Detail: "no single Primero referral to UNHCR matches this referral id",
			}}})
		}
		// The general list, as DTPDecisionToReferral applied it.
		upd := egress.Filter(e.p, "", dp.Patch)
		_, err = call(e.primeroCircuit, func() (refbridge.Referral, error) {
			return e.primero.UpdateReferral(ctx, ref.CaseRecordID, ref.ReferralID, upd)
		})
		if refbridge.ErrorCodeOf(err) == refbridge.EConflict {
			return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateHeld, Reason: ReasonTransitionRefusd, PeerRef: ref.String(), Problems: []refbridge.Problem{{
				Field: "progres_reviewdecision", Rule: ReasonTransitionRefusd,
				Detail: "Primero refused to move the referral to " + dp.Patch.Status + " (it was revoked, or already decided otherwise)",
			}}})
		}
		if err != nil {
			return stop, err
		}
		// The referral's own exchange ends first: if refbridge stops between
		// the two changes, this exchange runs again, Primero answers the
		// repeated status change as done, and nothing is left waiting.
		if sent.ID != "" && sent.State == refbridge.StateDelivered {
			if err := e.move(ctx, sent, store.Change{To: refbridge.StateDone}); err != nil && !isStoreConflict(err) {
				return stop, err
			}
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateDone, PeerRef: ref.String(), Peer: "primero",
			Actor: progresActor(d.ReviewBy), Fields: upd.Fields()})

	case refbridge.StateRejected:
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateFailed, Reason: ex.Reason, Problems: ex.Problems})
	}
	return stop, nil
}

// findReferral locates the Primero referral a DTP decision is about: from
// the F2 exchange that sent it when refbridge did, otherwise (a referral sent
// before refbridge) by the case_id and service suffix the id carries — and
// then only a referral of a service implemented by the receiving agency.
func (e *Engine) findReferral(ctx context.Context, orgID string, dp mapping.DecisionPatch) (referralRef, refbridge.Exchange, error) {
	sent, err := e.store.GetByKey(ctx, refbridge.FlowReferral, orgID)
	switch {
	case err == nil:
		if ref, ok := parseReferralRef(sent.PeerRef); ok {
			return ref, sent, nil
		}
	case refbridge.ErrorCodeOf(err) != refbridge.ENotFound:
		return referralRef{}, refbridge.Exchange{}, err
	}
	cases, err := e.casesWhere(ctx, "case_id", dp.CaseID)
	if err != nil || len(cases) != 1 {
		return referralRef{}, sent, err
	}
	c := cases[0]
	referrals, err := call(e.primeroCircuit, func() ([]refbridge.Referral, error) { return e.primero.ListReferrals(ctx, c.ID) })
	if err != nil {
		return referralRef{}, sent, err
	}
	var found []referralRef
	for _, r := range referrals {
		svc := c.Service(r.ServiceRecordID)
		if svc == nil || svc.ImplementingAgency != e.p.Referrals().ReceivingAgency || !strings.HasSuffix(r.ServiceRecordID, dp.ServiceSuffix) {
			continue
		}
		found = append(found, referralRef{CaseRecordID: c.ID, ReferralID: r.ID})
	}
	if len(found) != 1 {
		return referralRef{}, sent, nil
	}
	return found[0], sent, nil
}

func hasRule(ps []refbridge.Problem, rule string) bool {
	for _, p := range ps {
		if p.Rule == rule {
			return true
		}
	}
	return false
}

// rules lists the distinct rule codes of ps, for a status line a case worker
// reads in Primero (codes only, never values).
func rules(ps []refbridge.Problem) string {
	var out []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.Rule+p.Field] {
			seen[p.Rule+p.Field] = true
			out = append(out, p.Rule+" "+p.Field)
		}
	}
	return strings.Join(out, "; ")
}
