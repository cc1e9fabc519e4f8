package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"refbridge"
	"refbridge/profile"
)

// ReferralInput is what flow F2 maps: a Primero case, the unique_id of the
// service referred to UNHCR, the Primero referral of that service, and the
// user records the contact may come from (the owner's and the fallback's).
type ReferralInput struct {
	Case            refbridge.Case     `json:"case"`
	ServiceUniqueID string             `json:"service_unique_id"`
	Referral        refbridge.Referral `json:"referral"`
	Users           []refbridge.User   `json:"users"`
}

// CaseToDTPReferral maps a Primero referral to UNHCR to the DTP
// ReceiveIncomingReferral body (contract §3.3, without its defects), or
// returns every problem found, consent first. Field paths in problems are
// paths in the input.
func CaseToDTPReferral(p *profile.Profile, in ReferralInput) (refbridge.DTPReferral, []refbridge.Problem) {
	var ps problems
	c := &in.Case
	consent := p.Consent(profile.PrimeroToProgres, profile.ConsentInput{Case: c, Referral: &in.Referral})
	if !consent.OK {
		for _, f := range consent.Failed {
			ps.add(f.Field, profile.RuleConsentMissing, f.Reason+", so the profile's consent rule does not hold")
		}
		if len(consent.Failed) == 0 {
			ps.add("case", profile.RuleConsentMissing, consent.Reason)
		}
	}
	refs := p.Referrals()

	var svc *refbridge.Service
	svcPath := "service_unique_id"
	switch {
	case blank(in.ServiceUniqueID):
		ps.add("service_unique_id", profile.RuleRequired, "names the service referred and is missing")
	default:
		for i := range c.Services {
			if c.Services[i].UniqueID == in.ServiceUniqueID {
				svc, svcPath = &c.Services[i], "case.services_section["+strconv.Itoa(i)+"]"
				break
			}
		}
		if svc == nil {
			ps.add("service_unique_id", profile.RuleNotFound, "no service of the case has this unique_id")
		}
	}

	dtpService := ""
	if svc != nil {
		if svc.ImplementingAgency != refs.ReceivingAgency {
			ps.addf(svcPath+".service_implementing_agency", profile.RuleNotReferable,
				"the service is implemented by %q, not by %s, so it is not a referral to proGres", svc.ImplementingAgency, refs.ReceivingAgency)
		}
		switch name, ok := p.ServiceToProgres(svc.ServiceType); {
		case blank(svc.ServiceType):
			ps.add(svcPath+".service_type", profile.RuleRequired, "is missing; DTP cannot route a referral without it")
		case !ok:
			ps.addf(svcPath+".service_type", profile.RuleUnknownCode, "service type %q is not in the profile's service table", svc.ServiceType)
		default:
			dtpService = name
		}
		// DTP returns this id as progres_orgreferralid; the reference's form
		// is kept for wire compatibility (contract §3.3).
		if id := svc.UniqueID; len(id) < 12 || !allHex(id[len(id)-12:]) {
			ps.add(svcPath+".unique_id", profile.RuleFormat, "does not end in 12 hexadecimal digits, so it cannot key the DTP referral")
		}
		if s := svc.ServiceResponseDayTime; !blank(s) {
			if _, ok := parseDateTime(s); !ok {
				ps.add(svcPath+".service_response_day_time", profile.RuleInvalidDate, "is not a date-time")
			}
		}
	}

	if in.Referral.Status == refbridge.ReferralRevoked {
		ps.add("referral.status", profile.RuleRevoked, "the referral was revoked in Primero and must not be sent")
	}
	switch {
	case blank(in.Referral.ID) && blank(in.Referral.ServiceRecordID):
		ps.add("referral", profile.RuleRequired, "the Primero referral of the service is missing; consent and revocation are read from it")
	case svc != nil && in.Referral.ServiceRecordID != svc.UniqueID:
		ps.add("referral.service_record_id", profile.RuleMismatch, "the referral is not for the service named by service_unique_id")
	}

	if blank(c.CaseID) {
		ps.add("case.case_id", profile.RuleRequired, "is missing; DTP needs it to send the decision back")
	} else if strings.Contains(c.CaseID, "#") {
		ps.add("case.case_id", profile.RuleFormat, "contains #, which separates the parts of the DTP referral id")
	}
	if blank(c.OwnedBy) {
		ps.add("case.owned_by", profile.RuleRequired, "is missing")
	}
	if blank(c.UNHCRIndividualNo) {
		ps.add("case.unhcr_individual_no", profile.RuleRequired, "is missing; proGres finds the person by it")
	}
	owner, ok := p.Agency(c.OwnedByAgencyID)
	switch {
	case blank(c.OwnedByAgencyID):
		ps.add("case.owned_by_agency_id", profile.RuleRequired, "is missing; the referring agency must be known")
	case !ok:
		ps.addf("case.owned_by_agency_id", profile.RuleUnknownCode, "agency %q is not in the profile's agency table", c.OwnedByAgencyID)
	}

	sex := ""
	if !blank(c.Sex) {
		var ok bool
		if sex, ok = p.SexToProgres(c.Sex); !ok {
			ps.add("case.sex", profile.RuleUnknownCode, "the sex code is not in the profile's sex table")
		}
	}
	dob := ""
	if !blank(c.DateOfBirth) {
		if t, ok := parseDateTime(c.DateOfBirth); ok {
			dob = t.Format(time.DateOnly)
		} else {
			ps.add("case.date_of_birth", profile.RuleInvalidDate, "is not a date")
		}
	}
	var language *string
	if len(c.Language) > 0 {
		names := make([]string, 0, len(c.Language))
		for i, code := range c.Language {
			name, ok := p.LanguageToProgres(code)
			if !ok {
				ps.add(fmt.Sprintf("case.language[%d]", i), profile.RuleUnknownCode, "the language code is not in the profile's language table")
				continue
			}
			names = append(names, name)
		}
		language = new(strings.Join(names, p.LanguageJoin()))
	}

	contact, found := pickContact(refs, in.Users, c.OwnedBy)
	if !found {
		ps.addf("users", profile.RuleContactMissing,
			"neither the case owner's user record nor the fallback user's is enabled with every contact field the profile requires (%s)", strings.Join(refs.ContactRequire, ", "))
	}

	if len(ps) > 0 {
		return refbridge.DTPReferral{}, ps
	}
	notes := svc.ReferralNotes
	if blank(notes) {
		notes = refs.NotesWhenEmpty
	}
	out := refbridge.DTPReferral{
		PrimeroUser: c.OwnedBy,
		Position:    contact.Position,
		Email:       contact.Email,
		Phone:       deref(contact.Phone),
		FullName:    contact.FullName,
		RequestType: refbridge.RequestTypeIncomingReferral,
		// DTP's service_implementing_agency names the Primero-side agency
		// behind the referral: the reference sent "UNICEF" to mean the
		// referring agency (its planned rule mapped UNHCR to UNICEF), so the
		// case's agency goes here, never a constant (contract §8.28).
		ServiceImplementingAgency: owner.DTP,
		ServiceResponseDayTime:    svc.ServiceResponseDayTime,
		ServiceType:               dtpService,
		ServiceTypeOther:          nilIfBlank(svc.ServiceTypeOther),
		ServiceReferralNotes:      notes,
		OwnedByAgencyID:           owner.DTP,
		UNHCRIndividualNo:         c.UNHCRIndividualNo,
		UNHCRIDNo:                 c.UNHCRIDNo,
		NameFirst:                 c.NameFirst,
		NameLast:                  c.NameLast,
		NameMiddle:                nilIfBlank(c.NameMiddle),
		NameNickname:              nilIfBlank(c.NameNickname),
		DateOfBirth:               dob,
		Sex:                       sex,
		AddressCurrent:            c.AddressCurrent,
		TelephoneCurrent:          nilIfBlank(c.TelephoneCurrent),
		Language:                  language,
		ID:                        OrgReferralID(c.CaseID, in.ServiceUniqueID),
	}
	profile.Restrict(p, c.OwnedByAgencyID, &out)
	return out, nil
}

// pickContact returns one whole user record to be the referral's contact:
// the case owner's when it is enabled and complete, otherwise the profile's
// fallback user's. Fields are never mixed from two people (contract §8.23).
func pickContact(refs profile.Referrals, users []refbridge.User, owner string) (refbridge.User, bool) {
	usable := func(u *refbridge.User) bool {
		if u.Disabled != nil && *u.Disabled {
			return false
		}
		for _, f := range refs.ContactRequire {
			var v string
			switch f {
			case "full_name":
				v = u.FullName
			case "email":
				v = u.Email
			case "phone":
				v = deref(u.Phone)
			case "position":
				v = u.Position
			}
			if blank(v) {
				return false
			}
		}
		return true
	}
	for _, name := range []string{owner, refs.FallbackUser} {
		if blank(name) {
			continue
		}
		for i := range users {
			if users[i].UserName == name && usable(&users[i]) {
				return users[i], true
			}
		}
	}
	return refbridge.User{}, false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func allHex(s string) bool {
	for i := range len(s) {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}
