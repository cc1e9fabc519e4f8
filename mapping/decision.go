package mapping

import (
	"slices"
	"strconv"
	"strings"

	"refbridge"
	"refbridge/profile"
)

// DecisionPatch is flow F2d's result: which Primero referral UNHCR decided
// on, and the PATCH body that records the decision.
type DecisionPatch struct {
	// CaseID is the Primero case_id the referral id names.
	CaseID string
	// ServiceSuffix is the last 12 characters of the referred service's
	// unique_id, as the referral id carries them.
	ServiceSuffix string
	// Patch holds status and, for a rejection, rejected_reason; it is
	// restricted to the ISP allow-list.
	Patch refbridge.Referral
}

// DTPDecisionToReferral maps one DTP PrimeroIncomingReferralDecision element
// to the Primero referral PATCH (contract §3.6, without its defects: both
// spellings of the rejection comment are read, and unknown decision or
// reason codes are problems, never written into Primero).
func DTPDecisionToReferral(p *profile.Profile, d refbridge.ReferralDecision) (DecisionPatch, []refbridge.Problem) {
	var ps problems
	caseID, suffix, ok := splitOrgReferralID(d.OrgReferralID)
	switch {
	case blank(d.OrgReferralID):
		ps.add("progres_orgreferralid", profile.RuleRequired, "is missing; it names the Primero referral decided on")
	case !ok:
		ps.add("progres_orgreferralid", profile.RuleFormat, "is not <case_id>#<last 12 hexadecimal digits of the service unique_id>")
	}
	status := ""
	switch s, ok := p.ReviewDecision(d.ReviewDecision); {
	case blank(d.ReviewDecision):
		ps.add("progres_reviewdecision", profile.RuleRequired, "is missing")
	case !ok:
		ps.addf("progres_reviewdecision", profile.RuleUnknownCode, "review decision %q is not in the profile's decision table", strings.TrimSpace(d.ReviewDecision))
	default:
		status = s
	}
	reason := ""
	if code := d.RejectionReason; !blank(code) {
		var ok bool
		if reason, ok = p.RejectionReason(code); !ok {
			ps.addf("progres_interoperabiltyreferralrejectionreason", profile.RuleUnknownCode, "rejection reason %q is not in the profile's reason table", strings.TrimSpace(code))
		}
	}
	if len(ps) > 0 {
		return DecisionPatch{}, ps
	}
	out := DecisionPatch{CaseID: caseID, ServiceSuffix: suffix, Patch: refbridge.Referral{Status: status}}
	if status == refbridge.ReferralRejected {
		// "<reason>: <comment>", or whichever of the two exists; the
		// reference wrote "Reason: undefined" without a comment.
		parts := make([]string, 0, 2)
		if reason != "" {
			parts = append(parts, reason)
		}
		if c := HTMLToText(d.Comment()); c != "" {
			parts = append(parts, c)
		}
		out.Patch.RejectedReason = strings.Join(parts, ": ")
	}
	profile.Restrict(p, "", &out.Patch)
	return out, nil
}

// splitOrgReferralID splits "<case_id>#<12 hex digits>", the id refbridge
// sent as the DTP referral id.
func splitOrgReferralID(id string) (caseID, suffix string, ok bool) {
	caseID, suffix, found := strings.Cut(strings.TrimSpace(id), "#")
	if !found || !isUUID(caseID) || len(suffix) != 12 || !allHex(suffix) {
		return "", "", false
	}
	return strings.ToLower(caseID), strings.ToLower(suffix), true
}

// ServiceDecisionInput is what flow F1d maps: a Primero case and the
// unique_id of the proGres-requested service a case worker decided on.
type ServiceDecisionInput struct {
	Case            refbridge.Case `json:"case"`
	ServiceUniqueID string         `json:"service_unique_id"`
}

// ServiceDecisionToDTP maps a case worker's decision on a service that came
// from proGres to the DTP ReceiveDecisionOutgoingReferral body (contract
// §2.9). Only services carrying a proGres intervention number qualify, which
// keeps decisions on other services from being sent (contract §8.12).
func ServiceDecisionToDTP(p *profile.Profile, in ServiceDecisionInput) (refbridge.InterventionStatus, []refbridge.Problem) {
	var ps problems
	c := &in.Case
	var svc *refbridge.Service
	path := "service_unique_id"
	if blank(in.ServiceUniqueID) {
		ps.add(path, profile.RuleRequired, "names the service decided on and is missing")
	} else {
		for i := range c.Services {
			if c.Services[i].UniqueID == in.ServiceUniqueID {
				svc, path = &c.Services[i], "case.services_section["+strconv.Itoa(i)+"]"
				break
			}
		}
		if svc == nil {
			ps.add(path, profile.RuleNotFound, "no service of the case has this unique_id")
		}
	}
	status := ""
	if svc != nil {
		if blank(svc.InterventionNumber) {
			ps.add(path+".progres_interventionnumber", profile.RuleNotFromProgres, "the service did not come from proGres, so proGres has no intervention to decide on")
		}
		var ok bool
		status, ok = p.DecisionToProgres(svc.UNHCRReferralStatus)
		switch {
		case ok:
		case blank(svc.UNHCRReferralStatus) || svc.UNHCRReferralStatus == p.Intake().ReferralStatus:
			ps.add(path+".unhcr_referral_status", profile.RuleNotDecided, "the service is not accepted or rejected yet")
		default:
			ps.addf(path+".unhcr_referral_status", profile.RuleUnknownCode, "status %q is not in the profile's decision table", svc.UNHCRReferralStatus)
		}
	}
	if blank(c.CaseID) {
		ps.add("case.case_id", profile.RuleRequired, "is missing; DTP correlates decisions by it")
	}
	if blank(c.OwnedBy) {
		ps.add("case.owned_by", profile.RuleRequired, "is missing")
	}
	if len(ps) > 0 {
		return refbridge.InterventionStatus{}, ps
	}
	reason := p.NoReasonText()
	if svc.UNHCRReferralStatus == refbridge.ReferralRejected && !blank(svc.UNHCRRejectionReason) {
		reason = svc.UNHCRRejectionReason
	}
	out := refbridge.InterventionStatus{
		CaseID:             new(c.CaseID),
		PrimeroUser:        new(c.OwnedBy),
		InterventionNumber: svc.InterventionNumber,
		Status:             status,
		ClosureReason:      reason,
		RequestType:        refbridge.RequestTypeDecisionOutgoingReferral,
	}
	profile.Restrict(p, c.OwnedByAgencyID, &out)
	return out, nil
}

// SuccessCallback is the DTP "Pending Acknowledgement" for an intervention
// filed in Primero as caseID, owned by owner (contract §2.7). Like the
// reference it carries no request_type.
func SuccessCallback(p *profile.Profile, interventionNumber, caseID, owner string) refbridge.InterventionStatus {
	out := refbridge.InterventionStatus{
		CaseID:             nilIfBlank(caseID),
		PrimeroUser:        nilIfBlank(owner),
		InterventionNumber: interventionNumber,
		Status:             refbridge.StatusPendingAcknowledgement,
		ClosureReason:      p.PendingText(),
	}
	profile.Restrict(p, "", &out)
	return out
}

// FailureCallback is the DTP "Delivery Fail" for an intervention refused
// with problems (contract §2.8): case_id and primero_user are null, and
// closure_reason tells proGres what to fix (see ClosureReason).
func FailureCallback(p *profile.Profile, interventionNumber string, problems []refbridge.Problem) refbridge.InterventionStatus {
	out := refbridge.InterventionStatus{
		InterventionNumber: interventionNumber,
		Status:             refbridge.StatusDeliveryFail,
		ClosureReason:      ClosureReason(p, problems),
		RequestType:        refbridge.RequestTypeFeedback,
	}
	profile.Restrict(p, "", &out)
	return out
}

// ClosureReason writes one sentence per kind of problem, from the profile's
// texts, with the fields concerned in place of {fields}; kinds appear in the
// order first found.
func ClosureReason(p *profile.Profile, problems []refbridge.Problem) string {
	var rules []string
	fields := map[string][]string{}
	for _, pr := range problems {
		if _, seen := fields[pr.Rule]; !seen {
			rules = append(rules, pr.Rule)
			fields[pr.Rule] = nil
		}
		if pr.Field != "" && !slices.Contains(fields[pr.Rule], pr.Field) {
			fields[pr.Rule] = append(fields[pr.Rule], pr.Field)
		}
	}
	sentences := make([]string, 0, len(rules))
	for _, r := range rules {
		s := strings.ReplaceAll(p.DeliveryFailedText(r), "{fields}", strings.Join(fields[r], ", "))
		if !slices.Contains(sentences, s) {
			sentences = append(sentences, s)
		}
	}
	return strings.Join(sentences, " ")
}
