package engine

import (
	"context"
	"errors"

	"refbridge"
	"refbridge/egress"
	"refbridge/mapping"
	"refbridge/primero"
	"refbridge/store"
)

// Reasons an exchange rests in held, failed or dead (machine codes).
const (
	ReasonInvalidInput     = "invalid_input"
	ReasonMultipleCases    = "multiple_cases"
	ReasonConsentMissing   = "consent_missing"
	ReasonConsentWithdrawn = "consent_withdrawn"
	ReasonUnknownReferral  = "unknown_referral"
	ReasonTransitionRefusd = "transition_refused"
	ReasonSyncPending      = "sync_pending"
	ReasonAwaitingDecision = "awaiting_decision"
)

// stepIntervention runs flow F1: proGres intervention → Primero case service
// → DTP callback (Pending Acknowledgement, or Delivery Fail with reasons).
func (e *Engine) stepIntervention(ctx context.Context, ex refbridge.Exchange) (next, error) {
	switch ex.State {
	case refbridge.StateReceived:
		rows, err := decode[[]refbridge.Intervention](ex)
		if err != nil {
			return stop, err
		}
		folded := mapping.FoldInterventions(rows)
		if len(folded) != 1 {
			return stop, refbridge.Errorf(refbridge.EInternal, "exchange %s holds %d interventions, want 1", ex.ID, len(folded))
		}
		up, problems := mapping.InterventionToCase(e.p, folded[0], e.now())
		if len(problems) > 0 {
			return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateRejected, Reason: ReasonInvalidInput, Problems: problems})
		}
		return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateMapped, Payload: encode(up)})

	case refbridge.StateMapped:
		up, err := decode[mapping.CaseUpsert](ex)
		if err != nil {
			return stop, err
		}
		res, err := e.upsertCase(ctx, up)
		if err != nil {
			return stop, err
		}
		if res.multiple > 0 {
			return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateHeld, Reason: ReasonMultipleCases, Problems: []refbridge.Problem{{
				Field: "individuals.progres_id", Rule: ReasonMultipleCases,
				Detail: "more than one Primero case carries this UNHCR individual number; the focal point must merge them or choose one",
			}}})
		}
		cb := mapping.SuccessCallback(e.p, up.InterventionNumber, res.caseID, res.owner)
		return continue_, e.move(ctx, ex, store.Change{To: refbridge.StateDelivered, PeerRef: res.recordID, Payload: encode(cb), Problems: res.differs,
			AuditKind: refbridge.AuditShared, Peer: "primero", Actor: progresActor(up.Requester), Fields: res.fields})

	case refbridge.StateDelivered:
		cb, err := decode[refbridge.InterventionStatus](ex)
		if err != nil {
			return stop, err
		}
		// Callbacks are built for the general list, as SuccessCallback does.
		msg := egress.Filter(e.p, "", cb)
		if err := e.sendStatus(ctx, msg); err != nil {
			return stop, err
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateDone, Problems: ex.Problems, Peer: "dtp", Fields: msg.Fields()})

	case refbridge.StateRejected:
		msg := egress.Filter(e.p, "", mapping.FailureCallback(e.p, ex.Key, ex.Problems))
		if err := e.sendStatus(ctx, msg); err != nil {
			return stop, err
		}
		return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateFailed, Reason: ex.Reason, Problems: ex.Problems, Peer: "dtp", Fields: msg.Fields()})
	}
	return stop, nil
}

func (e *Engine) sendStatus(ctx context.Context, s egress.Message[refbridge.InterventionStatus]) error {
	_, err := call(e.dtpCircuit, func() (struct{}, error) { return struct{}{}, e.dtp.SendInterventionStatus(ctx, s) })
	return err
}

// upserted is where an intervention was filed in Primero.
type upserted struct {
	recordID, caseID, owner string
	// differs names identity fields whose Primero value differs from
	// proGres's; the case worker's value is kept, the focal point is told.
	differs []refbridge.Problem
	// fields names the fields of the bodies sent to Primero, for the
	// audit; none when the case held the service already.
	fields []string
	// multiple is the number of cases found when more than one matched.
	multiple int
}

// upsertCase files the intervention's service into the child's case, found
// by UNHCR individual number, or creates the case. A case is created with an
// id derived from the site and individual number, so that two exchanges for
// the same child, or a retry after a lost answer, cannot create two cases.
func (e *Engine) upsertCase(ctx context.Context, up mapping.CaseUpsert) (upserted, error) {
	individual := up.Case.UNHCRIndividualNo
	cases, err := e.casesWhere(ctx, "unhcr_individual_no", individual)
	if err != nil {
		return upserted{}, err
	}
	switch len(cases) {
	case 0:
		// The id is derived, not filtered: it is refbridge's bookkeeping
		// (see primero.Client.CreateCase), and no allow-list names it.
		body := egress.Filter(e.p, up.Agency, up.Case)
		id, err := call(e.primeroCircuit, func() (string, error) {
			return e.primero.CreateCase(ctx, mapping.CaseRecordID(e.p.SiteID(), individual), body)
		})
		var exists *primero.CaseExistsError
		switch {
		case errors.As(err, &exists):
			// Our earlier attempt, or another intervention for the same
			// child, created it: file the service into it like any case.
			existing, err := call(e.primeroCircuit, func() (refbridge.Case, error) { return e.primero.GetCase(ctx, exists.ID) })
			if err != nil {
				return upserted{}, err
			}
			res, err := e.patchCase(ctx, up, existing)
			// The refused create carried its body to Primero all the same.
			res.fields = unionFields(body.Fields(), res.fields)
			return res, err
		case err != nil:
			return upserted{}, err
		}
		created, err := call(e.primeroCircuit, func() (refbridge.Case, error) { return e.primero.GetCase(ctx, id) })
		if err != nil {
			return upserted{}, err
		}
		return upserted{recordID: id, caseID: created.CaseID, owner: created.OwnedBy, fields: body.Fields()}, nil
	case 1:
		return e.patchCase(ctx, up, cases[0])
	}
	return upserted{multiple: len(cases)}, nil
}

func (e *Engine) patchCase(ctx context.Context, up mapping.CaseUpsert, existing refbridge.Case) (upserted, error) {
	res := upserted{recordID: existing.ID, caseID: existing.CaseID, owner: existing.OwnedBy, differs: mapping.IdentityDifferences(existing, up.Case)}
	patch, changed := up.Patch(existing)
	if !changed {
		return res, nil
	}
	body := egress.Filter(e.p, up.Agency, patch)
	res.fields = body.Fields()
	_, err := call(e.primeroCircuit, func() (refbridge.Case, error) { return e.primero.PatchCase(ctx, existing.ID, body) })
	return res, err
}

// casesWhere lists the cases whose field equals value. The client verifies
// every returned case really carries it (Primero ignores a filter it does
// not allow instead of refusing it).
func (e *Engine) casesWhere(ctx context.Context, field, value string) ([]refbridge.Case, error) {
	return call(e.primeroCircuit, func() ([]refbridge.Case, error) {
		var out []refbridge.Case
		for c, err := range e.primero.Cases(ctx, primero.CaseQuery{Equal: map[string]string{field: value}, Per: 50}) {
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	})
}
