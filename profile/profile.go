// Package profile loads and checks a country profile: the YAML file in which
// a focal point keeps everything that differs between deployments — agencies,
// code tables both ways, callback texts, the ISP allow-lists and the consent
// rule — so that the mappings hold no country data and a new country is a new
// file, not new code.
//
// A Profile is immutable once loaded and safe for concurrent use.
package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"refbridge"
	"refbridge/profiles"
)

// Severity says whether a finding makes a profile unusable.
type Severity int

// Finding severities.
const (
	// Error findings make the profile invalid.
	Error Severity = iota
	// Warning findings are for the focal point to confirm (entries marked
	// `review: true`); they do not fail a check.
	Warning
)

// String returns "error" or "warning", as `profile check` prints them.
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Finding is one thing `profile check` reports: where (YAML path and line)
// and a plain sentence.
type Finding struct {
	Path     string // e.g. "$.services[3].progres"
	Line     int    // 1-based; 0 when unknown
	Column   int
	Severity Severity
	Message  string
}

// String formats the finding as one line for a terminal.
func (f Finding) String() string {
	where := f.Path
	if f.Line > 0 {
		where = fmt.Sprintf("%s (line %d)", f.Path, f.Line)
	}
	return fmt.Sprintf("%s: %s: %s", f.Severity, where, f.Message)
}

// Agency is a participating agency: its Primero code (the agency unique_id
// used in owned_by_agency_id and service_implementing_agency) and the name
// DTP/proGres knows it by.
type Agency struct {
	Code string
	DTP  string
	Name Label
}

// Intake is how refbridge files a proGres intervention in Primero (F1).
type Intake struct {
	Module              string // module_id of created cases
	Owner               string // the intake (focal point) user who owns created cases
	CaseStatus          string // status of created cases
	RequestingAgency    string // agency code written as service_request_agency
	ImplementingAgency  string // default service_implementing_agency
	ServiceResponseType string
	ServiceReferral     string
	ReferralStatus      string // initial unhcr_referral_status
}

// Referrals is how refbridge sends a Primero referral to proGres (F2).
type Referrals struct {
	// ReceivingAgency is the agency code of services that are referrals to
	// proGres (UNHCR in the pilot).
	ReceivingAgency string
	// FallbackUser is the user_name whose whole record is the referral's
	// contact when the case owner's record cannot be used.
	FallbackUser string
	// ContactRequire lists the user fields a contact record must have.
	ContactRequire []string
	// NotesWhenEmpty is sent as service_referral_notes when the service has none.
	NotesWhenEmpty string
}

// Service is one row of the service table, for listings and tests.
type Service struct {
	Primero   string   // Primero service_type
	Progres   string   // the name sent to DTP
	Aliases   []string // further names accepted from proGres
	InboundAs string   // the Primero service the proGres name comes back as, if not Primero
	Label     Label
}

// Profile is a loaded, valid country profile. The zero value is not usable;
// get one from Load, Parse or Check.
type Profile struct {
	digest   string // SHA-256 of the source, hex
	siteID   string
	siteName Label
	language string

	agencies map[string]Agency
	intake   Intake
	required []fieldRef // intervention fields that must be present
	refs     Referrals

	services      []Service
	serviceIn     map[string]string // proGres name → Primero service_type
	serviceOut    map[string]string // Primero service_type → DTP name
	serviceAgency map[string]string // Primero service_type → implementing agency, when not the default

	languageIn      map[string]string
	languageOut     map[string]string
	languageDefault string
	languageJoin    string

	sexIn  map[string]string
	sexOut map[string]string

	protectionIn      map[string]string
	protectionDefault string

	decisionIn  map[string]string
	reasons     map[string]Label
	decisionOut map[string]string

	noReason       Label
	pending        Label
	deliveryFailed map[string]Label

	isp     isp
	consent map[Direction]rule
}

// Read returns the source of the profile ref names: a bare name such as
// "gambella" is a profile embedded in the binary; anything with a path
// separator or a .yaml/.yml suffix is a file.
func Read(ref string) (src []byte, err error) {
	if isFileRef(ref) {
		return os.ReadFile(ref)
	}
	src, err = fs.ReadFile(profiles.FS(), ref+".yaml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no embedded profile %q (embedded: %s); give a file path to read a file", ref, strings.Join(Names(), ", "))
	}
	return src, err
}

func isFileRef(ref string) bool {
	return strings.ContainsRune(ref, '/') || strings.ContainsRune(ref, filepath.Separator) ||
		strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")
}

// Names lists the embedded profiles.
func Names() []string {
	matches, _ := fs.Glob(profiles.FS(), "*.yaml")
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		out = append(out, strings.TrimSuffix(m, ".yaml"))
	}
	slices.Sort(out)
	return out
}

// Load reads and parses the profile ref names (see Read).
func Load(ref string) (*Profile, error) {
	src, err := Read(ref)
	if err != nil {
		return nil, err
	}
	return Parse(src)
}

// Parse parses and validates a profile. An invalid profile yields a
// *refbridge.Error with code EInvalid whose Problems are the error findings
// (Field = YAML path, Rule = "profile"); warnings are not errors.
func Parse(src []byte) (*Profile, error) {
	p, findings := Check(src)
	if p != nil {
		return p, nil
	}
	e := &refbridge.Error{Code: refbridge.EInvalid, Message: "invalid profile"}
	for _, f := range findings {
		if f.Severity == Error {
			e.Problems = append(e.Problems, refbridge.Problem{Field: f.Path, Rule: "profile", Detail: f.Message})
		}
	}
	return nil, e
}

// Digest is the SHA-256 (hex) of the profile's source: which version of the
// agreed mappings and allow-lists is in force, for the audit trail.
func (p *Profile) Digest() string { return p.digest }

// SiteID returns the site id, which also seeds every deterministic service id.
func (p *Profile) SiteID() string { return p.siteID }

// SiteName returns the site's display name.
func (p *Profile) SiteName() Label { return p.siteName }

// Language returns the language of texts refbridge writes for people.
func (p *Profile) Language() string { return p.language }

// Agency returns the agency with Primero code code.
func (p *Profile) Agency(code string) (Agency, bool) {
	a, ok := p.agencies[code]
	return a, ok
}

// Intake returns how inbound interventions are filed in Primero.
func (p *Profile) Intake() Intake { return p.intake }

// Referrals returns how outbound referrals are sent to proGres.
func (p *Profile) Referrals() Referrals {
	r := p.refs
	r.ContactRequire = slices.Clone(r.ContactRequire)
	return r
}

// Services returns the service table in profile order.
func (p *Profile) Services() []Service { return slices.Clone(p.services) }

// ServiceFromProgres maps a proGres intervention type (or DTP service name)
// to a Primero service_type.
func (p *Profile) ServiceFromProgres(name string) (string, bool) {
	s, ok := p.serviceIn[strings.TrimSpace(name)]
	return s, ok
}

// ServiceToProgres maps a Primero service_type to the name DTP expects.
func (p *Profile) ServiceToProgres(serviceType string) (string, bool) {
	s, ok := p.serviceOut[serviceType]
	return s, ok
}

// ServiceImplementingAgency returns the agency code that implements an
// inbound service of serviceType.
func (p *Profile) ServiceImplementingAgency(serviceType string) string {
	if a, ok := p.serviceAgency[serviceType]; ok {
		return a
	}
	return p.intake.ImplementingAgency
}

// LanguageFromProgres maps a proGres language name to a Primero language
// code, falling back to the profile's default when it names one.
func (p *Profile) LanguageFromProgres(name string) (code string, ok bool) {
	if c, ok := p.languageIn[strings.TrimSpace(name)]; ok {
		return c, true
	}
	return p.languageDefault, p.languageDefault != ""
}

// LanguageToProgres maps a Primero language code to the name DTP expects.
func (p *Profile) LanguageToProgres(code string) (string, bool) {
	s, ok := p.languageOut[code]
	return s, ok
}

// LanguageJoin returns the separator between language names sent to DTP.
func (p *Profile) LanguageJoin() string { return p.languageJoin }

// SexFromProgres maps a proGres sex code to Primero's.
func (p *Profile) SexFromProgres(code string) (string, bool) {
	s, ok := p.sexIn[strings.TrimSpace(code)]
	return s, ok
}

// SexToProgres maps a Primero sex code to the word DTP expects.
func (p *Profile) SexToProgres(code string) (string, bool) {
	s, ok := p.sexOut[code]
	return s, ok
}

// ProtectionConcernFromProgres maps a proGres specific-need code to a Primero
// protection concern, falling back to the profile's default when it names one.
func (p *Profile) ProtectionConcernFromProgres(code string) (string, bool) {
	if c, ok := p.protectionIn[strings.TrimSpace(code)]; ok {
		return c, true
	}
	return p.protectionDefault, p.protectionDefault != ""
}

// ReviewDecision maps a proGres progres_reviewdecision code to a Primero
// referral status.
func (p *Profile) ReviewDecision(code string) (string, bool) {
	s, ok := p.decisionIn[strings.TrimSpace(code)]
	return s, ok
}

// RejectionReason returns the text, in the profile's language, of a proGres
// rejection reason code.
func (p *Profile) RejectionReason(code string) (string, bool) {
	l, ok := p.reasons[strings.TrimSpace(code)]
	if !ok {
		return "", false
	}
	return l.Text(p.language), true
}

// DecisionToProgres maps a Primero unhcr_referral_status decision to the DTP
// status word.
func (p *Profile) DecisionToProgres(status string) (string, bool) {
	s, ok := p.decisionOut[status]
	return s, ok
}

// NoReasonText is the closure_reason sent when a decision carries no reason.
func (p *Profile) NoReasonText() string { return p.noReason.Text(p.language) }

// PendingText is the closure_reason of a success callback; "" sends none.
func (p *Profile) PendingText() string { return p.pending.Text(p.language) }

// DeliveryFailedText returns the failure-callback sentence for problems of
// rule, with "{fields}" where the fields go; the profile's default sentence
// when it has none for rule.
func (p *Profile) DeliveryFailedText(rule string) string {
	if l, ok := p.deliveryFailed[rule]; ok {
		return l.Text(p.language)
	}
	return p.deliveryFailed["default"].Text(p.language)
}

// MissingFromIntervention returns the profile's required intervention fields
// that iv leaves empty, in profile order.
func (p *Profile) MissingFromIntervention(iv *refbridge.Intervention) []string {
	var missing []string
	rv := reflect.ValueOf(iv).Elem()
	for _, f := range p.required {
		if !f.present(rv) {
			missing = append(missing, f.name)
		}
	}
	return missing
}
