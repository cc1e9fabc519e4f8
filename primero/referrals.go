package primero

import (
	"context"
	"net/http"

	"refbridge"
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

// referralCreate holds exactly the keys Primero accepts when a referral is
// created (contract §3); anything else in a refbridge.Referral (id,
// status, …) is the server's to set and is not sent.
type referralCreate struct {
	TransitionedTo         string  `json:"transitioned_to,omitempty"`
	TransitionedToAgency   string  `json:"transitioned_to_agency,omitempty"`
	TransitionedToRemote   string  `json:"transitioned_to_remote,omitempty"`
	Remote                 *bool   `json:"remote,omitempty"`
	TypeOfExport           string  `json:"type_of_export,omitempty"`
	Service                string  `json:"service,omitempty"`
	ServiceRecordID        string  `json:"service_record_id,omitempty"`
	Notes                  *string `json:"notes,omitempty"`
	ConsentOverridden      *bool   `json:"consent_overridden,omitempty"`
	AuthorizedRoleUniqueID string  `json:"authorized_role_unique_id,omitempty"`
	AllowCaseCreation      *bool   `json:"allow_case_creation,omitempty"`
}

// CreateReferral refers the case with database id caseID as r describes
// (transitioned_to, service_record_id, notes, consent_overridden, …) and
// returns the referral Primero created.
//
// A referral has no client-chosen id, so a repeated POST would create a
// second referral: it is retried in-line only when Primero provably did not
// receive it (connection refused, 429, 503). Any other failure is returned,
// and the caller must look at ListReferrals before trying again. A case
// without consent gives an invalid error with a consent_missing problem.
func (c *Client) CreateReferral(ctx context.Context, caseID string, r refbridge.Referral) (refbridge.Referral, error) {
	const op = "create referral"
	var out struct {
		Data refbridge.Referral `json:"data"`
	}
	switch {
	case !isUUID(caseID):
		return out.Data, errorf(refbridge.EInvalid, "%s: case id must be a UUID", op)
	case r.TransitionedTo == "" && (r.Remote == nil || !*r.Remote):
		return out.Data, &refbridge.Error{Code: refbridge.EInvalid, Message: op + ": a recipient is required",
			Problems: []refbridge.Problem{{Field: "transitioned_to", Rule: "required", Detail: "a referral needs a recipient user unless it is remote"}}}
	case r.ServiceRecordID != "" && !isLowerUUID(r.ServiceRecordID):
		return out.Data, &refbridge.Error{Code: refbridge.EInvalid, Message: op + ": service_record_id must be a lowercase UUID",
			Problems: []refbridge.Problem{{Field: "service_record_id", Rule: "invalid", Detail: "must be the unique_id of a service item"}}}
	}
	body := referralCreate{
		TransitionedTo:         r.TransitionedTo,
		TransitionedToAgency:   r.TransitionedToAgency,
		TransitionedToRemote:   r.TransitionedToRemote,
		Remote:                 r.Remote,
		TypeOfExport:           r.TypeOfExport,
		Service:                r.Service,
		ServiceRecordID:        r.ServiceRecordID,
		Notes:                  r.Notes,
		ConsentOverridden:      r.ConsentOverridden,
		AuthorizedRoleUniqueID: r.AuthorizedRoleUniqueID,
		AllowCaseCreation:      r.AllowCaseCreation,
	}
	_, err := c.send(ctx, op, http.MethodPost, "/api/v2/cases/"+caseID+"/referrals", body, peerhttp.RetryUnsent, &out)
	return out.Data, err
}

// ReferralUpdate is a decision on a referral: Status is accepted or
// rejected (from in_progress) or done (from accepted). RejectedReason goes
// with rejected; RejectionNote, with done, becomes the service's
// note_on_referral_from_provider.
type ReferralUpdate struct {
	Status         string `json:"status"`
	RejectedReason string `json:"rejected_reason,omitempty"`
	RejectionNote  string `json:"rejection_note,omitempty"`
}

// UpdateReferral moves referral referralID of case caseID to u.Status and
// returns the referral as Primero holds it afterwards.
//
// Primero answers 200 to a transition it refuses (wrong starting status)
// and changes nothing, so the status in its answer is checked (re-reading
// the referral when the answer lacks it): if it is not u.Status the result
// is a conflict *refbridge.Error naming the refused transition. A request
// for the status the referral already has succeeds; that is what makes the
// in-line retry of this absolute update safe.
func (c *Client) UpdateReferral(ctx context.Context, caseID, referralID string, u ReferralUpdate) (refbridge.Referral, error) {
	const op = "update referral"
	var out struct {
		Data refbridge.Referral `json:"data"`
	}
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
