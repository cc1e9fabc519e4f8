package profile

// The types below mirror the YAML file exactly as a focal point writes it;
// check.go turns a document into a Profile. Keys are snake_case like the
// peers' field names, so a profile reads like the contract it implements.

// document is one profile file.
type document struct {
	Version            int           `yaml:"version"`
	Site               siteDoc       `yaml:"site"`
	Agencies           []agencyDoc   `yaml:"agencies"`
	Intake             intakeDoc     `yaml:"intake"`
	Referrals          referralsDoc  `yaml:"referrals"`
	Decisions          decisionsDoc  `yaml:"decisions"`
	Services           []serviceDoc  `yaml:"services"`
	Languages          languagesDoc  `yaml:"languages"`
	Sex                []sexDoc      `yaml:"sex"`
	ProtectionConcerns protectionDoc `yaml:"protection_concerns"`
	Callbacks          callbacksDoc  `yaml:"callbacks"`
	ISP                ispDoc        `yaml:"isp"`
	Consent            consentDoc    `yaml:"consent"`
}

type siteDoc struct {
	ID       string `yaml:"id"`
	Name     Label  `yaml:"name"`
	Language string `yaml:"language"`
}

type agencyDoc struct {
	Code   string `yaml:"code"`
	DTP    string `yaml:"dtp"`
	Name   Label  `yaml:"name"`
	Review bool   `yaml:"review"`
}

type intakeDoc struct {
	Module              string   `yaml:"module"`
	Owner               string   `yaml:"owner"`
	CaseStatus          string   `yaml:"case_status"`
	RequestingAgency    string   `yaml:"requesting_agency"`
	ImplementingAgency  string   `yaml:"implementing_agency"`
	ServiceResponseType string   `yaml:"service_response_type"`
	ServiceReferral     string   `yaml:"service_referral"`
	ReferralStatus      string   `yaml:"referral_status"`
	Required            []string `yaml:"required"`
	Review              bool     `yaml:"review"`
}

type referralsDoc struct {
	ReceivingAgency string     `yaml:"receiving_agency"`
	Contact         contactDoc `yaml:"contact"`
	NotesWhenEmpty  string     `yaml:"notes_when_empty"`
}

type contactDoc struct {
	FallbackUser string   `yaml:"fallback_user"`
	Require      []string `yaml:"require"`
	Review       bool     `yaml:"review"`
}

type decisionsDoc struct {
	FromProgres      []decisionDoc `yaml:"from_progres"`
	RejectionReasons []reasonDoc   `yaml:"rejection_reasons"`
	ToProgres        []statusDoc   `yaml:"to_progres"`
}

type decisionDoc struct {
	Code   string `yaml:"code"`
	Status string `yaml:"status"`
	Review bool   `yaml:"review"`
}

type reasonDoc struct {
	Code   string `yaml:"code"`
	Label  Label  `yaml:"label"`
	Review bool   `yaml:"review"`
}

type statusDoc struct {
	Status string `yaml:"status"`
	DTP    string `yaml:"dtp"`
	Review bool   `yaml:"review"`
}

// serviceDoc pairs a Primero service_type with the name proGres/DTP uses.
// InboundAs names the Primero service a shared proGres name becomes.
type serviceDoc struct {
	Primero            string   `yaml:"primero"`
	Progres            string   `yaml:"progres"`
	Aliases            []string `yaml:"aliases"`
	InboundAs          string   `yaml:"inbound_as"`
	ImplementingAgency string   `yaml:"implementing_agency"`
	Label              Label    `yaml:"label"`
	Review             bool     `yaml:"review"`
}

type languagesDoc struct {
	Join               string        `yaml:"join"`
	DefaultFromProgres string        `yaml:"default_from_progres"`
	Entries            []languageDoc `yaml:"entries"`
}

type languageDoc struct {
	Primero   string   `yaml:"primero"`
	Progres   string   `yaml:"progres"`
	Aliases   []string `yaml:"aliases"`
	InboundAs string   `yaml:"inbound_as"`
	Review    bool     `yaml:"review"`
}

type sexDoc struct {
	Progres string   `yaml:"progres"`
	Aliases []string `yaml:"aliases"`
	Primero string   `yaml:"primero"`
	DTP     string   `yaml:"dtp"`
	Review  bool     `yaml:"review"`
}

type protectionDoc struct {
	Default string          `yaml:"default"`
	Entries []protectionRow `yaml:"entries"`
}

type protectionRow struct {
	Progres string `yaml:"progres"`
	Primero string `yaml:"primero"`
	Label   Label  `yaml:"label"`
	Review  bool   `yaml:"review"`
}

type callbacksDoc struct {
	NoReason               Label            `yaml:"no_reason"`
	PendingAcknowledgement Label            `yaml:"pending_acknowledgement"`
	DeliveryFailed         map[string]Label `yaml:"delivery_failed"`
}

type ispDoc struct {
	ProgresToPrimero inboundISP           `yaml:"progres_to_primero"`
	PrimeroToProgres outboundISP          `yaml:"primero_to_progres"`
	Agencies         map[string]agencyISP `yaml:"agencies"`
}

type inboundISP struct {
	Case             []string `yaml:"case"`
	ReferralDecision []string `yaml:"referral_decision"`
	CommentAuthors   bool     `yaml:"comment_authors"`
}

type outboundISP struct {
	Referral []string `yaml:"referral"`
	Status   []string `yaml:"status"`
}

// agencyISP narrows the lists for one Primero-side agency whose own ISP with
// UNHCR shares less; nil lists mean "as for everyone".
type agencyISP struct {
	ProgresToPrimero struct {
		Case             []string `yaml:"case"`
		ReferralDecision []string `yaml:"referral_decision"`
	} `yaml:"progres_to_primero"`
	PrimeroToProgres outboundISP `yaml:"primero_to_progres"`
}

type consentDoc struct {
	PrimeroToProgres ruleDoc `yaml:"primero_to_progres"`
	ProgresToPrimero ruleDoc `yaml:"progres_to_primero"`
}

// ruleDoc: consent holds when every condition of All holds, or when any one
// Override condition holds; AttestedBy names an agency that vouches for
// consent under the ISP when its messages carry no consent field.
type ruleDoc struct {
	All        []conditionDoc `yaml:"all"`
	Override   []conditionDoc `yaml:"override"`
	AttestedBy string         `yaml:"attested_by"`
	Review     bool           `yaml:"review"`
}

type conditionDoc struct {
	Field  string `yaml:"field"`
	Equals any    `yaml:"equals"`
}
