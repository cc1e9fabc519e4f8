package mapping

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"refbridge"
	"refbridge/profile"
)

// Folded is one proGres intervention after FoldInterventions: DTP sends one
// FetchXML row per language × specific-need join (contract §2.3), so one
// intervention can arrive as several rows.
type Folded struct {
	// Intervention is the intervention's first row.
	Intervention refbridge.Intervention
	// Rows are the positions in the batch of every row folded in, first
	// row first.
	Rows []int
	// Languages are the language names the rows carry, first seen first,
	// without repeats.
	Languages []string
	// SpecificNeeds are the specific-need codes the rows carry (the
	// sub-category code, else the category code), without repeats.
	SpecificNeeds []string
	// Problems report rows that share the intervention number but differ
	// beyond the joins; such an intervention is refused, as no row can be
	// trusted over another.
	Problems []refbridge.Problem
}

// FoldInterventions groups the rows of a DTP batch by intervention number,
// in the order each number first appears. Rows that differ only in their
// language and specific-need joins fold into one; rows without a number stay
// alone (InterventionToCase then reports the number missing).
func FoldInterventions(rows []refbridge.Intervention) []Folded {
	var out []Folded
	byNumber := make(map[string]int, len(rows))
	for i := range rows {
		row := &rows[i]
		number := strings.TrimSpace(row.InterventionNumber)
		k, seen := byNumber[number]
		if !seen || number == "" {
			byNumber[number] = len(out)
			f := Folded{Intervention: *row, Rows: []int{i}}
			f.addJoins(row)
			out = append(out, f)
			continue
		}
		f := &out[k]
		for _, field := range differingFields(&f.Intervention, row) {
			f.Problems = append(f.Problems, refbridge.Problem{Field: field, Rule: profile.RuleConflict,
				Detail: fmt.Sprintf("rows %d and %d of the batch carry the same intervention number but differ in this field, beyond the language and specific-need joins", f.Rows[0], i)})
		}
		f.Rows = append(f.Rows, i)
		f.addJoins(row)
	}
	return out
}

func (f *Folded) addJoins(row *refbridge.Intervention) {
	if name := refbridge.LookupName(row.Language); !blank(name) && !slices.Contains(f.Languages, name) {
		f.Languages = append(f.Languages, name)
	}
	need := row.SpecificNeedSubcode
	if blank(need) {
		need = row.SpecificNeedCode
	}
	if !blank(need) && !slices.Contains(f.SpecificNeeds, need) {
		f.SpecificNeeds = append(f.SpecificNeeds, need)
	}
}

// joinField reports whether an intervention key comes from the language or
// specific-need join, where rows of one intervention may differ.
func joinField(name string) bool {
	return strings.HasPrefix(name, "languages.") || strings.HasPrefix(name, "specificneeds.") ||
		name == "spncategory2code" || name == "spnsubcategory2code"
}

// differingFields lists the non-join keys in which b differs from a. Lookups
// compare by id and name, the parts that carry meaning.
func differingFields(a, b *refbridge.Intervention) []string {
	var out []string
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := av.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if joinField(name) {
			continue
		}
		x, y := av.Field(i).Interface(), bv.Field(i).Interface()
		if lx, ok := x.(*refbridge.Lookup); ok {
			ly := y.(*refbridge.Lookup)
			if refbridge.LookupName(lx) != refbridge.LookupName(ly) || lookupID(lx) != lookupID(ly) {
				out = append(out, name)
			}
			continue
		}
		if x != y {
			out = append(out, name)
		}
	}
	return out
}

func lookupID(l *refbridge.Lookup) string {
	if l == nil {
		return ""
	}
	return l.ID
}

// CaseUpsert is a Primero case body built from one proGres intervention,
// with what the engine needs to upsert it without harming a case worker's
// edits (contract §8.10).
type CaseUpsert struct {
	// Case is the body for creating the case: record fields (status,
	// owned_by, module_id, case_id), identity fields and exactly one
	// service. It is already restricted to the ISP allow-list; the engine
	// filters it again, for Agency, when it is sent (package egress).
	Case refbridge.Case
	// Agency is the Primero agency whose ISP allow-list applies: the
	// service's implementing agency.
	Agency string
	// ServiceUniqueID is the service's deterministic unique_id.
	ServiceUniqueID string
	// InterventionNumber is the proGres number, the callbacks' correlation key.
	InterventionNumber string
	// Requester is the proGres record id of the user who owns the
	// intervention: who permitted the share, for the audit (never a name).
	Requester string
}

// Patch returns the PATCH body filing the intervention into an existing case,
// and whether it changes anything. It fills only empty identity fields, adds
// the service only if not held yet (by unique_id or intervention number), and
// never sends owner, status or module, so a case worker's case stays theirs.
func (u CaseUpsert) Patch(existing refbridge.Case) (patch refbridge.Case, changed bool) {
	fill := func(dst *string, have, want string) {
		if blank(have) && want != "" {
			*dst, changed = want, true
		}
	}
	c := &u.Case
	fill(&patch.UNHCRIDNo, existing.UNHCRIDNo, c.UNHCRIDNo)
	fill(&patch.NameFirst, existing.NameFirst, c.NameFirst)
	fill(&patch.NameMiddle, existing.NameMiddle, c.NameMiddle)
	fill(&patch.NameLast, existing.NameLast, c.NameLast)
	fill(&patch.NameNickname, existing.NameNickname, c.NameNickname)
	fill(&patch.DateOfBirth, existing.DateOfBirth, c.DateOfBirth)
	fill(&patch.Sex, existing.Sex, c.Sex)
	fill(&patch.TelephoneCurrent, existing.TelephoneCurrent, c.TelephoneCurrent)
	fill(&patch.AddressCurrent, existing.AddressCurrent, c.AddressCurrent)
	if existing.Age == nil && c.Age != nil && blank(existing.DateOfBirth) {
		patch.Age, changed = c.Age, true
	}
	if len(existing.Language) == 0 && len(c.Language) > 0 {
		patch.Language, changed = c.Language, true
	}
	if len(existing.ProtectionConcerns) == 0 && len(c.ProtectionConcerns) > 0 {
		patch.ProtectionConcerns, changed = c.ProtectionConcerns, true
	}
	held := slices.ContainsFunc(existing.Services, func(s refbridge.Service) bool {
		return s.UniqueID == u.ServiceUniqueID || (u.InterventionNumber != "" && s.InterventionNumber == u.InterventionNumber)
	})
	if !held && len(c.Services) > 0 {
		patch.Services, changed = c.Services, true
	}
	return patch, changed
}

// InterventionToCase maps one folded proGres intervention to the Primero
// case body of flow F1 (contract §2.5, without its defects), or returns
// every problem found. Field paths in problems are the intervention's keys.
// now gives the calendar date ages are computed on.
func InterventionToCase(p *profile.Profile, f Folded, now time.Time) (CaseUpsert, []refbridge.Problem) {
	iv := &f.Intervention
	ps := problems(slices.Clone(f.Problems))
	// Consent first (DESIGN invariant 3), as the profile defines it for
	// proGres interventions.
	if r := p.Consent(profile.ProgresToPrimero, profile.ConsentInput{Intervention: iv}); !r.OK {
		for _, f := range r.Failed {
			ps.add(strings.TrimPrefix(f.Field, "intervention."), profile.RuleConsentMissing, "the profile's consent rule for proGres referrals does not hold for this field")
		}
		if len(r.Failed) == 0 {
			ps.add("input", profile.RuleConsentMissing, r.Reason)
		}
	}
	for _, name := range p.MissingFromIntervention(iv) {
		ps.add(name, profile.RuleRequired, "is required by the profile and is missing or empty")
	}
	in := p.Intake()

	serviceType := ""
	if name := iv.InterventionType; !blank(name) {
		var ok bool
		if serviceType, ok = p.ServiceFromProgres(name); !ok {
			ps.addf("interventiontype.progres_description", profile.RuleUnknownCode,
				"intervention type %q is not in the profile's service table", strings.TrimSpace(name))
		}
	}
	agency := p.ServiceImplementingAgency(serviceType)

	sex := ""
	if code := iv.Sex; !blank(code) {
		var ok bool
		if sex, ok = p.SexFromProgres(code); !ok {
			ps.add("individuals.progres_sex", profile.RuleUnknownCode, "the sex code is not in the profile's sex table")
		}
	}

	dob := ""
	var age *int
	if s := iv.DateOfBirth; !blank(s) {
		birth, ok := parseDateTime(s)
		switch {
		case !ok:
			ps.add("individuals.progres_dateofbirth", profile.RuleInvalidDate, "is not a date (YYYY-MM-DD, optionally with a time)")
		case civilOf(now).before(civilOf(birth)):
			ps.add("individuals.progres_dateofbirth", profile.RuleInvalidDate, "is after the date of processing")
		case Age(birth, now) > 130:
			ps.add("individuals.progres_dateofbirth", profile.RuleInvalidDate, "is more than 130 years before the date of processing")
		default:
			// Every accepted layout starts with the date as written, which
			// is what Format(time.DateOnly) would print.
			dob = strings.TrimSpace(s)[:len(time.DateOnly)]
			a := Age(birth, now)
			age = &a
		}
	}

	start := ""
	if s := iv.InterventionStartDate; !blank(s) {
		if t, ok := parseDateTime(s); ok {
			start = rfc3339UTC(s, t)
		} else {
			ps.add("progres_interventionstartdate", profile.RuleInvalidDate, "is not a date-time")
		}
	}

	caseID := strings.TrimSpace(iv.PrimeroID)
	if caseID != "" && !isUUID(caseID) {
		ps.add("progres_primeroid", profile.RuleFormat, "is not a Primero case_id (a UUID)")
	}

	languages := f.Languages
	if languages == nil {
		if name := refbridge.LookupName(iv.Language); !blank(name) {
			languages = []string{name}
		}
	}
	var langCodes []string
	for _, name := range languages {
		code, ok := p.LanguageFromProgres(name)
		if !ok {
			ps.add("languages.progres_languagecodeid.Name", profile.RuleUnknownCode,
				"a language is not in the profile's language table, and the profile names no default")
			continue
		}
		if !slices.Contains(langCodes, code) {
			langCodes = append(langCodes, code)
		}
	}

	// Specific needs are mapped only when the ISP lets them into Primero, so
	// an unknown code cannot hold up a referral that would not carry it.
	var concerns []string
	if p.Allows(profile.KindCase, agency, "protection_concerns") {
		for _, code := range f.SpecificNeeds {
			c, ok := p.ProtectionConcernFromProgres(code)
			if !ok {
				ps.add("spnsubcategory2code", profile.RuleUnknownCode, "a specific-need code is not in the profile's protection concern table")
				continue
			}
			if !slices.Contains(concerns, c) {
				concerns = append(concerns, c)
			}
		}
	}

	reasons, err := parseComments(iv.ReasonForReferral)
	if err != nil {
		ps.add("progres_reasonforreferral", profile.RuleFormat, "is not the JSON list of comments ({CreatedBy, Text, CreatedOn}) the contract describes")
	}

	if len(ps) > 0 {
		return CaseUpsert{}, ps
	}

	number := strings.TrimSpace(iv.InterventionNumber)
	svc := refbridge.Service{
		UniqueID:               ServiceUniqueID(p.SiteID(), number),
		ServiceType:            serviceType,
		ServiceResponseType:    in.ServiceResponseType,
		ServiceResponseDayTime: start,
		ImplementingAgency:     agency,
		Referral:               in.ServiceReferral,
		ReferralNotes:          referralNotes(iv.InterventionDesc, reasons, p.CommentAuthorsAllowed()),
		RequestExternal:        new(true),
		RequestTitle:           iv.UserTitle,
		RequestAgency:          in.RequestingAgency,
		RequestPhone:           iv.UserPhone,
		RequestEmail:           iv.UserEmail,
		UNHCRReferralStatus:    in.ReferralStatus,
		InterventionNumber:     number,
	}
	c := refbridge.Case{
		CaseID:             strings.ToLower(caseID),
		Status:             in.CaseStatus,
		OwnedBy:            in.Owner,
		ModuleID:           in.Module,
		UNHCRIndividualNo:  strings.TrimSpace(iv.IndividualID),
		UNHCRIDNo:          strings.TrimSpace(refbridge.LookupName(iv.RegistrationGroup)),
		NameFirst:          iv.GivenName,
		NameMiddle:         iv.MiddleName,
		NameLast:           iv.FamilyName,
		NameNickname:       iv.CommonlyUsedName,
		DateOfBirth:        dob,
		Age:                age,
		Sex:                sex,
		TelephoneCurrent:   iv.PrimaryPhone,
		AddressCurrent:     address(iv),
		Language:           langCodes,
		ProtectionConcerns: concerns,
		Services:           []refbridge.Service{svc},
	}
	profile.Restrict(p, agency, &c)
	return CaseUpsert{Case: c, Agency: agency, ServiceUniqueID: svc.UniqueID, InterventionNumber: number, Requester: strings.TrimSpace(iv.BusinessOwner)}, nil
}

// rfc3339UTC formats t as RFC 3339 in UTC, reusing s when it already is
// (as DTP writes it: "2024-05-06T00:00:00Z").
func rfc3339UTC(s string, t time.Time) string {
	s = strings.TrimSpace(s)
	if len(s) == len("2006-01-02T15:04:05Z") && s[len(s)-1] == 'Z' {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}

// address joins the current-address levels 1–6 with single spaces, skipping
// empty levels (the reference left stray spaces for them).
func address(iv *refbridge.Intervention) string {
	levels := [6]string{
		refbridge.LookupName(iv.LocationLevel1), refbridge.LookupName(iv.LocationLevel2),
		refbridge.LookupName(iv.LocationLevel3), refbridge.LookupName(iv.LocationLevel4),
		refbridge.LookupName(iv.LocationLevel5), iv.LocationLevel6,
	}
	n := 0
	for _, l := range levels {
		n += len(l) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for _, l := range levels {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(l)
	}
	return b.String()
}
