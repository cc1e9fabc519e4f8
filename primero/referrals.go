package primero

import (
	"context"
	"fmt"
	"net/http"

	"refbridge"
	"refbridge/egress"
	"refbridge/peerhttp"
)

// ListReferrals returns the referrals of the case with database id caseID
// that the API user's role may see (Primero does not page them).
func (c *Client) ListReferrals(ctx context.Context, caseID string) ([]refbridge.Referral, error) {
	const op = "list referrals"
	if !isUUID(caseID) {
		return nil, errorf(refbridge.EInvalid, "%s: case id must be a UUID", op)
	}
	var out struct {
		Data []refbridge.Referral `json:"data"`
	}
	err := c.get(ctx, op, "/api/v2/cases/"+caseID+"/referrals", nil, &out)
	return out.Data, err
}

// referralUpdate is the body of a decision on a referral (primero-v2 §3):
// Status is accepted or rejected (from in_progress) or done (from
// accepted). RejectedReason goes with rejected; RejectionNote, with done,
// becomes the service's note_on_referral_from_provider. No other key of a
// referral is Primero's to take in this request.
type referralUpdate struct {
	Status         string `json:"status"`
	RejectedReason string `json:"rejected_reason,omitempty"`
	RejectionNote  string `json:"rejection_note,omitempty"`
}

// UpdateReferral moves referral referralID of case caseID to the status of
// decision and returns the referral as Primero holds it afterwards. decision
// is the EgressFilter's output (a Message that did not pass it is refused
// unsent); its status, rejected_reason and rejection_note, as far as the
// allow-list kept them, make the request body.
//
// Primero answers 200 to a transition it refuses (wrong starting status)
// and changes nothing, so the status in its answer is checked (re-reading
// the referral when the answer lacks it): if it is not the status asked for
// the result is a conflict *refbridge.Error naming the refused transition.
// A request for the status the referral already has succeeds; that is what
// makes the in-line retry of this absolute update safe.
func (c *Client) UpdateReferral(ctx context.Context, caseID, referralID string, decision egress.Message[refbridge.Referral]) (refbridge.Referral, error) {
	const op = "update referral"
	var out struct {
		Data refbridge.Referral `json:"data"`
	}
	if err := decision.Err(); err != nil {
		return out.Data, fmt.Errorf("%s: %w", op, err)
	}
	d := decision.Value()
	u := referralUpdate{Status: d.Status, RejectedReason: d.RejectedReason, RejectionNote: d.RejectionNote}
	switch {
	case !isUUID(caseID) || !isUUID(referralID):
		return out.Data, errorf(refbridge.EInvalid, "%s: case and referral ids must be UUIDs", op)
	case u.Status != refbridge.ReferralAccepted && u.Status != refbridge.ReferralRejected && u.Status != refbridge.ReferralDone:
		return out.Data, errorf(refbridge.EInvalid, "%s: status must be accepted, rejected or done", op)
	}
	if _, err := c.send(ctx, op, http.MethodPatch, "/api/v2/cases/"+caseID+"/referrals/"+referralID, u, peerhttp.RetryIdempotent, &out); err != nil {
		return out.Data, err
	}
	got := out.Data
	if got.Status == "" {
		list, err := c.ListReferrals(ctx, caseID)
		if err != nil {
			return got, err
		}
		got = refbridge.Referral{}
		for _, r := range list {
			if r.ID == referralID {
				got = r
				break
			}
		}
	}
	if got.Status != u.Status {
		from := got.Status
		if !isFieldName(from) { // a status is a code; anything else is not echoed
			from = "unknown"
		}
		return got, peerErrorf(refbridge.EConflict, "%s: Primero refused the transition of referral %s from %s to %s", op, referralID, from, u.Status)
	}
	return got, nil
}
