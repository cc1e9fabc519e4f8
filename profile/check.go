package profile

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"refbridge"
)

// Check parses and validates src. It returns every finding, in file order,
// and the profile when there is no error finding (warnings allowed).
func Check(src []byte) (*Profile, []Finding) {
	file, err := parser.ParseBytes(src, parser.ParseComments)
	if err != nil {
		f := Finding{Path: "$", Severity: Error, Message: "not valid YAML: " + firstLine(err.Error())}
		var se *yaml.SyntaxError
		if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
			f.Message = "not valid YAML: " + se.Message
			f.Line, f.Column = se.Token.Position.Line, se.Token.Position.Column
		}
		return nil, []Finding{f}
	}
	if len(file.Docs) != 1 || file.Docs[0].Body == nil {
		return nil, []Finding{{Path: "$", Severity: Error, Message: "a profile must be exactly one non-empty YAML document"}}
	}
	d := newDecoder()
	var doc document
	d.decode(file.Docs[0].Body, reflect.ValueOf(&doc).Elem(), "$")
	c := &checker{d: d}
	p := c.compile(&doc)
	findings := append(d.findings, c.findings...)
	for i := range findings {
		if findings[i].Line == 0 {
			findings[i].Line, findings[i].Column = c.position(findings[i].Path)
		}
	}
	slices.SortStableFunc(findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), cmp.Compare(a.Severity, b.Severity))
	})
	for _, f := range findings {
		if f.Severity == Error {
			return nil, findings
		}
	}
	sum := sha256.Sum256(src)
	p.digest = hex.EncodeToString(sum[:])
	return p, findings
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// checker validates a decoded document while compiling it into a Profile.
type checker struct {
	d        *decoder
	prof     *Profile // being built; agencies() fills the table others refer to
	findings []Finding
	labels   []labelAt
}

type labelAt struct {
	path  string
	label Label
}

func (c *checker) errorf(path, format string, args ...any) {
	c.findings = append(c.findings, Finding{Path: path, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

// position finds the line of path, or of its nearest ancestor that was
// written (a missing key is reported where its parent starts).
func (c *checker) position(path string) (line, col int) {
	for p := path; p != ""; {
		if pos, ok := c.d.pos[p]; ok {
			return pos.Line, pos.Column
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return 0, 0
}

// review warns about an entry marked `review: true`, quoting the comment
// written after the mark, which says what to confirm.
func (c *checker) review(path, what string) {
	msg := what + " needs review"
	if why := c.d.comments[path+".review"]; why != "" {
		msg += ": " + why
	}
	msg += `; once confirmed, remove "review: true"`
	c.findings = append(c.findings, Finding{Path: path + ".review", Severity: Warning, Message: msg})
}

func (c *checker) need(path, value, what string) {
	if strings.TrimSpace(value) == "" {
		c.errorf(path, "%s is required", what)
	}
}

func (c *checker) label(path string, l Label, required bool, what string) {
	if l.empty() {
		if required {
			c.errorf(path, "%s is required", what)
		}
		return
	}
	c.labels = append(c.labels, labelAt{path, l})
}

func at(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// compile checks doc and builds the Profile; findings say what is wrong.
func (c *checker) compile(doc *document) *Profile {
	p := &Profile{}
	c.prof = p
	if doc.Version != 1 {
		c.errorf("$.version", "version must be 1 (the profile format this refbridge reads)")
	}
	c.site(doc, p)
	c.agencies(doc, p)
	c.intake(doc, p)
	c.referrals(doc, p)
	c.decisions(doc, p)
	c.services(doc, p)
	c.languages(doc, p)
	c.sex(doc, p)
	c.protection(doc, p)
	c.callbacks(doc, p)
	c.isp(doc, p)
	c.consentRules(doc, p)
	c.translations()
	return p
}

func (c *checker) site(doc *document, p *Profile) {
	p.siteID, p.siteName, p.language = doc.Site.ID, doc.Site.Name, doc.Site.Language
	if !regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`).MatchString(p.siteID) {
		c.errorf("$.site.id", "site id is required: lower-case letters, digits, - and _ (it seeds every service id, so never change it once live)")
	}
	c.label("$.site.name", p.siteName, true, "site name")
	if !langCode(p.language) {
		c.errorf("$.site.language", "site language is required: a language code such as en, the language of texts refbridge writes")
	}
}

func langCode(s string) bool {
	return regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`).MatchString(s)
}

func (c *checker) agencies(doc *document, p *Profile) {
	p.agencies = map[string]Agency{}
	dtpNames := map[string]string{}
	for i, a := range doc.Agencies {
		path := at("$.agencies", i)
		c.need(path+".code", a.Code, "agency code (the Primero agency unique_id)")
		c.need(path+".dtp", a.DTP, "the agency's name in DTP")
		c.label(path+".name", a.Name, false, "")
		if a.Code != "" {
			if _, dup := p.agencies[a.Code]; dup {
				c.errorf(path+".code", "duplicate agency code %q", a.Code)
			}
			p.agencies[a.Code] = Agency{Code: a.Code, DTP: a.DTP, Name: a.Name}
		}
		if first, dup := dtpNames[a.DTP]; dup && a.DTP != "" {
			c.errorf(path+".dtp", "DTP name %q is already used by agency %q", a.DTP, first)
		} else {
			dtpNames[a.DTP] = a.Code
		}
		if a.Review {
			c.review(path, fmt.Sprintf("agency %q", a.Code))
		}
	}
	if len(doc.Agencies) == 0 {
		c.errorf("$.agencies", "at least the two agencies of the ISP are required")
	}
}

func (c *checker) agencyRef(path, code, what string) {
	if code == "" {
		c.errorf(path, "%s is required", what)
		return
	}
	if _, ok := c.prof.agencies[code]; !ok {
		c.errorf(path, "unknown agency %q: add it to agencies or use one of %s", code, strings.Join(sortedKeys(c.prof.agencies), ", "))
	}
}

func (c *checker) intake(doc *document, p *Profile) {
	in := doc.Intake
	p.intake = Intake{Module: in.Module, Owner: in.Owner, CaseStatus: in.CaseStatus,
		RequestingAgency: in.RequestingAgency, ImplementingAgency: in.ImplementingAgency,
		ServiceResponseType: in.ServiceResponseType, ServiceReferral: in.ServiceReferral, ReferralStatus: in.ReferralStatus}
	c.need("$.intake.module", in.Module, "Primero module of created cases (module_id)")
	c.need("$.intake.owner", in.Owner, "intake (focal point) user who owns created cases")
	c.need("$.intake.case_status", in.CaseStatus, "status of created cases")
	c.agencyRef("$.intake.requesting_agency", in.RequestingAgency, "requesting agency")
	c.agencyRef("$.intake.implementing_agency", in.ImplementingAgency, "default implementing agency")
	c.need("$.intake.service_response_type", in.ServiceResponseType, "service_response_type of created services")
	c.need("$.intake.service_referral", in.ServiceReferral, "service_referral of created services")
	c.need("$.intake.referral_status", in.ReferralStatus, "initial unhcr_referral_status")
	known := interventionFields()
	seen := map[string]bool{}
	t := reflect.TypeFor[refbridge.Intervention]()
	for i, name := range in.Required {
		path := at("$.intake.required", i)
		if seen[name] {
			c.errorf(path, "duplicate field %q", name)
			continue
		}
		seen[name] = true
		ref, ok := scalarField(t, name)
		if !slices.Contains(known, name) || !ok {
			c.errorf(path, "%q is not an intervention field in the DTP contract", name)
			continue
		}
		p.required = append(p.required, ref)
	}
	// Without these the intervention cannot be keyed, matched or routed.
	for _, must := range []string{"progres_interventionnumber", "individuals.progres_id", "interventiontype.progres_description"} {
		if !seen[must] {
			c.errorf("$.intake.required", "%q must be required: refbridge keys, matches or routes every intervention by it", must)
		}
	}
	if in.Review {
		c.review("$.intake", "the intake settings")
	}
}

func (c *checker) referrals(doc *document, p *Profile) {
	r := doc.Referrals
	p.refs = Referrals{ReceivingAgency: r.ReceivingAgency, FallbackUser: r.Contact.FallbackUser,
		ContactRequire: r.Contact.Require, NotesWhenEmpty: r.NotesWhenEmpty}
	c.agencyRef("$.referrals.receiving_agency", r.ReceivingAgency, "receiving agency (services implemented by it are referrals to proGres)")
	c.need("$.referrals.contact.fallback_user", r.Contact.FallbackUser, "fallback contact user (user_name)")
	seen := map[string]bool{}
	for i, f := range r.Contact.Require {
		path := at("$.referrals.contact.require", i)
		switch {
		case !slices.Contains(contactFields(), f):
			c.errorf(path, "%q is not a contact field; use %s", f, strings.Join(contactFields(), ", "))
		case seen[f]:
			c.errorf(path, "duplicate field %q", f)
		}
		seen[f] = true
	}
	if r.Contact.Review {
		c.review("$.referrals.contact", "the referral contact")
	}
}

func (c *checker) decisions(doc *document, p *Profile) {
	p.decisionIn, p.reasons, p.decisionOut = map[string]string{}, map[string]Label{}, map[string]string{}
	primeroStatuses := []string{refbridge.ReferralAccepted, refbridge.ReferralRejected}
	for i, d := range doc.Decisions.FromProgres {
		path := at("$.decisions.from_progres", i)
		c.need(path+".code", d.Code, "proGres review decision code")
		if _, dup := p.decisionIn[d.Code]; dup {
			c.errorf(path+".code", "duplicate code %q", d.Code)
		}
		if !slices.Contains(primeroStatuses, d.Status) {
			c.errorf(path+".status", "status must be one a Primero referral can be moved to: %s", strings.Join(primeroStatuses, ", "))
		}
		p.decisionIn[d.Code] = d.Status
		if d.Review {
			c.review(path, fmt.Sprintf("review decision %q", d.Code))
		}
	}
	if len(doc.Decisions.FromProgres) == 0 {
		c.errorf("$.decisions.from_progres", "review decision codes are required")
	}
	for i, r := range doc.Decisions.RejectionReasons {
		path := at("$.decisions.rejection_reasons", i)
		c.need(path+".code", r.Code, "proGres rejection reason code")
		if _, dup := p.reasons[r.Code]; dup {
			c.errorf(path+".code", "duplicate code %q", r.Code)
		}
		c.label(path+".label", r.Label, true, "reason text")
		p.reasons[r.Code] = r.Label
		if r.Review {
			c.review(path, fmt.Sprintf("rejection reason %q", r.Code))
		}
	}
	dtpStatuses := []string{refbridge.StatusAcknowledged, refbridge.StatusRejected}
	for i, s := range doc.Decisions.ToProgres {
		path := at("$.decisions.to_progres", i)
		if !slices.Contains(primeroStatuses, s.Status) {
			c.errorf(path+".status", "status must be a Primero decision: %s", strings.Join(primeroStatuses, ", "))
		}
		if _, dup := p.decisionOut[s.Status]; dup {
			c.errorf(path+".status", "duplicate status %q", s.Status)
		}
		if !slices.Contains(dtpStatuses, s.DTP) {
			c.errorf(path+".dtp", "dtp must be a DTP decision status: %s", strings.Join(dtpStatuses, ", "))
		}
		p.decisionOut[s.Status] = s.DTP
		if s.Review {
			c.review(path, fmt.Sprintf("decision %q", s.Status))
		}
	}
	for _, s := range primeroStatuses {
		if _, ok := p.decisionOut[s]; !ok {
			c.errorf("$.decisions.to_progres", "no DTP status for the Primero decision %q", s)
		}
	}
}

// pairRow is one row of a two-way code table (services, languages).
type pairRow struct {
	path      string
	primero   string
	progres   string
	aliases   []string
	inboundAs string
}

// pairs compiles a two-way table. Each row maps a Primero code out to a
// proGres name; that name and the aliases come back in as the row's code, or
// as inbound_as when several codes share one proGres name.
func (c *checker) pairs(what string, rows []pairRow) (in, out map[string]string) {
	in, out = map[string]string{}, map[string]string{}
	firstAt := map[string]string{}
	for _, r := range rows {
		if strings.TrimSpace(r.primero) == "" {
			c.errorf(r.path+".primero", "Primero %s code is required", what)
		} else if first, dup := firstAt[r.primero]; dup {
			c.errorf(r.path+".primero", "duplicate Primero %s %q (first at %s)", what, r.primero, first)
		} else {
			firstAt[r.primero] = r.path
		}
		if strings.TrimSpace(r.progres) == "" {
			c.errorf(r.path+".progres", "%s %q is mapped in one direction only: give the proGres name it is sent as", what, r.primero)
		} else {
			out[r.primero] = r.progres
		}
	}
	// Second pass, once every code is known: where each proGres name comes
	// back to. A row whose inbound_as is wrong claims nothing, so its one
	// mistake is reported once.
	claimAt := map[string]string{}
	for _, r := range rows {
		target := r.primero
		if r.inboundAs != "" {
			target = r.inboundAs
			if r.inboundAs == r.primero {
				c.errorf(r.path+".inbound_as", "inbound_as repeats the row's own code; leave it out")
			} else if _, ok := firstAt[r.inboundAs]; !ok {
				c.errorf(r.path+".inbound_as", "inbound_as %q is not a Primero %s of this table", r.inboundAs, what)
				continue
			}
		}
		for k, name := range append([]string{r.progres}, r.aliases...) {
			path := r.path + ".progres"
			if k > 0 {
				path = at(r.path+".aliases", k-1)
				if strings.TrimSpace(name) == "" {
					c.errorf(path, "empty alias")
					continue
				}
			}
			if name == "" {
				continue
			}
			if prev, dup := in[name]; dup && prev != target {
				c.errorf(path, "duplicate proGres %s %q: it would come back as both %q (%s) and %q; mark one row with inbound_as", what, name, prev, claimAt[name], target)
				continue
			}
			in[name], claimAt[name] = target, path
		}
	}
	return in, out
}

func (c *checker) services(doc *document, p *Profile) {
	rows := make([]pairRow, len(doc.Services))
	p.serviceAgency = map[string]string{}
	for i, s := range doc.Services {
		path := at("$.services", i)
		rows[i] = pairRow{path, s.Primero, s.Progres, s.Aliases, s.InboundAs}
		c.label(path+".label", s.Label, false, "")
		if s.ImplementingAgency != "" {
			c.agencyRef(path+".implementing_agency", s.ImplementingAgency, "implementing agency")
			p.serviceAgency[s.Primero] = s.ImplementingAgency
		}
		p.services = append(p.services, Service{Primero: s.Primero, Progres: s.Progres,
			Aliases: slices.Clone(s.Aliases), InboundAs: s.InboundAs, Label: s.Label})
		if s.Review {
			c.review(path, fmt.Sprintf("service %s → %q", s.Primero, s.Progres))
		}
	}
	if len(rows) == 0 {
		c.errorf("$.services", "the service table is required")
	}
	p.serviceIn, p.serviceOut = c.pairs("service", rows)
}

func (c *checker) languages(doc *document, p *Profile) {
	l := doc.Languages
	rows := make([]pairRow, len(l.Entries))
	for i, e := range l.Entries {
		path := at("$.languages.entries", i)
		rows[i] = pairRow{path, e.Primero, e.Progres, e.Aliases, e.InboundAs}
		if e.Review {
			c.review(path, fmt.Sprintf("language %s → %q", e.Primero, e.Progres))
		}
	}
	p.languageIn, p.languageOut = c.pairs("language", rows)
	p.languageJoin, p.languageDefault = l.Join, l.DefaultFromProgres
	if l.Join == "" {
		c.errorf("$.languages.join", "the separator between language names sent to DTP is required")
	}
	if d := l.DefaultFromProgres; d != "" {
		if _, ok := p.languageOut[d]; !ok {
			c.errorf("$.languages.default_from_progres", "default %q is not a Primero language of the table", d)
		}
	}
}

func (c *checker) sex(doc *document, p *Profile) {
	p.sexIn, p.sexOut = map[string]string{}, map[string]string{}
	for i, s := range doc.Sex {
		path := at("$.sex", i)
		c.need(path+".progres", s.Progres, "proGres sex code")
		c.need(path+".primero", s.Primero, "Primero sex code")
		c.need(path+".dtp", s.DTP, "the word DTP expects")
		for k, code := range append([]string{s.Progres}, s.Aliases...) {
			cp := path + ".progres"
			if k > 0 {
				cp = at(path+".aliases", k-1)
			}
			if _, dup := p.sexIn[code]; dup && code != "" {
				c.errorf(cp, "duplicate proGres sex code %q", code)
			}
			p.sexIn[code] = s.Primero
		}
		if _, dup := p.sexOut[s.Primero]; dup && s.Primero != "" {
			c.errorf(path+".primero", "duplicate Primero sex code %q", s.Primero)
		}
		p.sexOut[s.Primero] = s.DTP
		if s.Review {
			c.review(path, fmt.Sprintf("sex %q", s.Progres))
		}
	}
	if len(doc.Sex) == 0 {
		c.errorf("$.sex", "the sex code table is required")
	}
}

func (c *checker) protection(doc *document, p *Profile) {
	p.protectionIn, p.protectionDefault = map[string]string{}, doc.ProtectionConcerns.Default
	values := map[string]bool{}
	for i, e := range doc.ProtectionConcerns.Entries {
		path := at("$.protection_concerns.entries", i)
		c.need(path+".progres", e.Progres, "proGres specific-need code")
		c.need(path+".primero", e.Primero, "Primero protection concern")
		c.label(path+".label", e.Label, false, "")
		if _, dup := p.protectionIn[e.Progres]; dup && e.Progres != "" {
			c.errorf(path+".progres", "duplicate proGres specific-need code %q", e.Progres)
		}
		p.protectionIn[e.Progres] = e.Primero
		values[e.Primero] = true
		if e.Review {
			c.review(path, fmt.Sprintf("protection concern %q", e.Progres))
		}
	}
	if d := p.protectionDefault; d != "" && !values[d] {
		c.errorf("$.protection_concerns.default", "default %q is not a Primero protection concern of the table", d)
	}
}

func (c *checker) callbacks(doc *document, p *Profile) {
	cb := doc.Callbacks
	p.noReason, p.pending, p.deliveryFailed = cb.NoReason, cb.PendingAcknowledgement, cb.DeliveryFailed
	c.label("$.callbacks.no_reason", cb.NoReason, true, "the closure_reason sent when a decision has no reason")
	c.label("$.callbacks.pending_acknowledgement", cb.PendingAcknowledgement, false, "")
	rules := append(Rules(), "default")
	for _, rule := range sortedKeys(cb.DeliveryFailed) {
		path := childPath("$.callbacks.delivery_failed", rule)
		if !slices.Contains(rules, rule) {
			c.errorf(path, "unknown problem rule %q; texts can be given for %s", rule, strings.Join(rules, ", "))
		}
		c.label(path, cb.DeliveryFailed[rule], true, "failure text")
	}
	if _, ok := cb.DeliveryFailed["default"]; !ok {
		c.errorf("$.callbacks.delivery_failed", "a default failure text is required (delivery_failed.default)")
	}
}

func (c *checker) isp(doc *document, p *Profile) {
	p.isp = isp{plans: map[Kind]*plan{}, agencies: map[string]map[Kind]*plan{}, commentAuthors: doc.ISP.ProgresToPrimero.CommentAuthors}
	lists := map[Kind][]string{
		KindCase:             doc.ISP.ProgresToPrimero.Case,
		KindReferralDecision: doc.ISP.ProgresToPrimero.ReferralDecision,
		KindDTPReferral:      doc.ISP.PrimeroToProgres.Referral,
		KindDTPStatus:        doc.ISP.PrimeroToProgres.Status,
	}
	for _, kind := range Kinds() {
		path := "$.isp." + string(kind)
		c.allowList(path, kind, lists[kind], nil)
		p.isp.plans[kind] = newPlan(kind, lists[kind])
	}
	for _, code := range sortedKeys(doc.ISP.Agencies) {
		apath := childPath("$.isp.agencies", code)
		c.agencyRef(apath, code, "agency")
		a := doc.ISP.Agencies[code]
		narrower := map[Kind][]string{
			KindCase:             a.ProgresToPrimero.Case,
			KindReferralDecision: a.ProgresToPrimero.ReferralDecision,
			KindDTPReferral:      a.PrimeroToProgres.Referral,
			KindDTPStatus:        a.PrimeroToProgres.Status,
		}
		plans := map[Kind]*plan{}
		for _, kind := range Kinds() {
			if narrower[kind] == nil {
				continue
			}
			c.allowList(apath+"."+string(kind), kind, narrower[kind], lists[kind])
			plans[kind] = newPlan(kind, narrower[kind])
		}
		p.isp.agencies[code] = plans
	}
}

// allowList checks one ISP list: every name is a field of the message in the
// contract, the fields the flow keys on are there, and an agency's list
// stays within the general one.
func (c *checker) allowList(path string, kind Kind, names, within []string) {
	if len(names) == 0 {
		c.errorf(path, "the allow-list is empty, so nothing could be sent; list the fields the ISP allows")
		return
	}
	known := Fields(kind)
	seen := map[string]bool{}
	for i, n := range names {
		fp := at(path, i)
		switch {
		case seen[n]:
			c.errorf(fp, "duplicate field %q", n)
		case !slices.Contains(known, n):
			c.errorf(fp, "%q is not a field of the %s message in the contract", n, kind)
		case within != nil && !slices.Contains(within, n):
			c.errorf(fp, "%q is not in the general %s list; an agency's list may only narrow it", n, kind)
		}
		seen[n] = true
	}
	for _, must := range wireRequired(kind) {
		if !seen[must] {
			c.errorf(path, "%q must be allowed: the peer cannot take or match the message without it", must)
		}
	}
}

func (c *checker) consentRules(doc *document, p *Profile) {
	p.consent = map[Direction]rule{
		PrimeroToProgres: c.consentRule("$.consent.primero_to_progres", PrimeroToProgres, doc.Consent.PrimeroToProgres),
		ProgresToPrimero: c.consentRule("$.consent.progres_to_primero", ProgresToPrimero, doc.Consent.ProgresToPrimero),
	}
}

func (c *checker) consentRule(path string, dir Direction, r ruleDoc) rule {
	if len(r.All) == 0 && r.AttestedBy == "" {
		c.errorf(path, "the consent rule is empty: list under `all` the fields that record consent, or name under `attested_by` the agency that vouches for it")
	}
	if r.AttestedBy != "" {
		c.agencyRef(path+".attested_by", r.AttestedBy, "attesting agency")
	}
	out := rule{attestedBy: r.AttestedBy}
	out.all = c.conditions(path+".all", dir, r.All)
	out.override = c.conditions(path+".override", dir, r.Override)
	out.okReason = out.holdsReason()
	if r.Review {
		c.review(path, "the consent rule for "+string(dir))
	}
	return out
}

func (c *checker) conditions(path string, dir Direction, conds []conditionDoc) []condition {
	var out []condition
	for i, cd := range conds {
		cp := at(path, i)
		record, name, _ := strings.Cut(cd.Field, ".")
		if !slices.Contains(directionRecords(dir), record) {
			c.errorf(cp+".field", "field must start with %s", strings.Join(directionRecords(dir), ". or ")+".")
			continue
		}
		ref, ok := scalarField(recordType(record), name)
		if !ok {
			c.errorf(cp+".field", "%q is not a %s field that holds one value", name, record)
			continue
		}
		wantBool := ref.kind == kindBool || ref.kind == kindBoolPtr || ref.kind == kindFlexBool
		switch w := cd.Equals.(type) {
		case nil:
			c.errorf(cp+".equals", "the value that counts as consent is required")
			continue
		case bool:
			if !wantBool {
				c.errorf(cp+".equals", "%s holds text; quote the expected value", cd.Field)
				continue
			}
		case string:
			if wantBool {
				c.errorf(cp+".equals", "%s is true or false; write equals: true or equals: false unquoted", cd.Field)
				continue
			}
			if strings.TrimSpace(w) == "" {
				c.errorf(cp+".equals", "the value that counts as consent is required")
				continue
			}
		}
		out = append(out, condition{record: record, field: ref, want: cd.Equals})
	}
	return out
}

// translations reports each label that lacks a language another label has,
// so that no reader meets a half-translated profile.
func (c *checker) translations() {
	langs := map[string]bool{}
	for _, l := range c.labels {
		for k := range l.label {
			langs[k] = true
			if !langCode(k) {
				c.errorf(childPath(l.path, k), "%q is not a language code such as en, fr, ar or am", k)
			}
		}
	}
	for _, l := range c.labels {
		for _, lang := range sortedKeys(langs) {
			if strings.TrimSpace(l.label[lang]) == "" {
				c.errorf(l.path, "no %q translation, which other labels in the profile have", lang)
			}
		}
	}
}
