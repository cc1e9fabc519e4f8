package refbridge

import "encoding/json"

// DTP request_type values (contract progres-dtp §5.7).
const (
	RequestTypeOutgoingReferral         = "PrimeroOutgoingReferral"         // DTP → bridge, F1
	RequestTypeIncomingReferralDecision = "PrimeroIncomingReferralDecision" // DTP → bridge, F2d
	RequestTypeIncomingReferral         = "ReceiveIncomingReferral"         // bridge → DTP, F2
	RequestTypeDecisionOutgoingReferral = "ReceiveDecisionOutgoingReferral" // bridge → DTP, F1d
	RequestTypeFeedback                 = "Feedback"                        // bridge → DTP, F1 failure callback
)

// DTP callback status values sent on ReceiveDecisionOutgoingReferral.
const (
	StatusPendingAcknowledgement = "Pending Acknowledgement"
	StatusDeliveryFail           = "Delivery Fail"
	StatusAcknowledged           = "acknowledged"
	StatusRejected               = "rejected"
)

// Lookup is a Dynamics 365 EntityReference as proGres flattens it into
// FetchXML results. Only Name carries meaning for the bridge.
type Lookup struct {
	ID            string            `json:"Id"`
	KeyAttributes []json.RawMessage `json:"KeyAttributes"`
	LogicalName   string            `json:"LogicalName"`
	Name          string            `json:"Name"`
	RowVersion    *string           `json:"RowVersion"`
}

// LookupName returns l.Name, or "" for a nil lookup.
func LookupName(l *Lookup) string {
	if l == nil {
		return ""
	}
	return l.Name
}

// InterventionBatch is the body DTP POSTs for flow F1 (PrimeroOutgoingReferral).
type InterventionBatch struct {
	// QueryParams is added by OpenFn's inbox, not by DTP; accepted and ignored.
	QueryParams   json.RawMessage `json:"__query_params,omitempty"`
	Interventions []Intervention  `json:"interventions"`
	RequestType   string          `json:"request_type,omitempty"`
}

// Intervention is one proGres intervention (a referral to UNICEF's partners)
// as DTP sends it: flattened FetchXML attributes, linked entities as
// "alias.attribute" (contract progres-dtp §2.3).
type Intervention struct {
	InterventionNumber      string `json:"progres_interventionnumber,omitempty"`
	LPInterventionID        string `json:"progres_lpinterventionid,omitempty"`
	InterventionStartDate   string `json:"progres_interventionstartdate,omitempty"`
	InterventionDesc        string `json:"progres_interventiondescription,omitempty"`
	ReasonForReferral       string `json:"progres_reasonforreferral,omitempty"`
	CommentsNonRestricted   string `json:"progres_comments_nonrestrictedstore,omitempty"`
	InterventionByOther     string `json:"progres_interventionbyother,omitempty"`
	ServiceProvider         string `json:"progres_interventionserviceprovider,omitempty"`
	InterventionType2       string `json:"progres_interventiontype2,omitempty"`
	InterventionSubtype2    string `json:"progres_interventionsubtype2,omitempty"`
	BusinessUnit            string `json:"progres_businessunit,omitempty"`
	BusinessOwner           string `json:"progres_businessowner,omitempty"`
	PrimeroID               string `json:"progres_primeroid,omitempty"`
	InterventionType        string `json:"interventiontype.progres_description,omitempty"`
	InterventionSubtype     string `json:"interventionsubtype.progres_description,omitempty"`
	ChildProtectionPriority string `json:"childprotection.progres_priority,omitempty"`

	UserTitle   string  `json:"user.title,omitempty"`
	UserEmail   string  `json:"user.internalemailaddress,omitempty"`
	UserPhone   string  `json:"user.mobilephone,omitempty"`
	UserPartner *Lookup `json:"user.progres_partner,omitempty"`

	IndividualID      string  `json:"individuals.progres_id,omitempty"`
	RegistrationGroup *Lookup `json:"individuals.progres_registrationgroupid,omitempty"`
	GivenName         string  `json:"individuals.progres_givenname,omitempty"`
	MiddleName        string  `json:"individuals.progres_middlename,omitempty"`
	FamilyName        string  `json:"individuals.progres_familyname,omitempty"`
	CommonlyUsedName  string  `json:"individuals.progres_commonyusedname,omitempty"` // sic, as proGres spells it
	DateOfBirth       string  `json:"individuals.progres_dateofbirth,omitempty"`
	Sex               string  `json:"individuals.progres_sex,omitempty"`
	PrimaryPhone      string  `json:"individuals.progres_primaryphonenumber,omitempty"`
	LocationLevel1    *Lookup `json:"individuals.progres_coalocationlevel1,omitempty"`
	LocationLevel2    *Lookup `json:"individuals.progres_coalocationlevel2,omitempty"`
	LocationLevel3    *Lookup `json:"individuals.progres_coalocationlevel3,omitempty"`
	LocationLevel4    *Lookup `json:"individuals.progres_coalocationlevel4,omitempty"`
	LocationLevel5    *Lookup `json:"individuals.progres_coalocationlevel5,omitempty"`
	LocationLevel6    string  `json:"individuals.progres_coalocationlevel6,omitempty"` // a plain string, unlike levels 1–5

	Language              *Lookup `json:"languages.progres_languagecodeid,omitempty"`
	LanguageReadLevel     string  `json:"languages.progres_readlevel,omitempty"`
	LanguageWriteLevel    string  `json:"languages.progres_writelevel,omitempty"`
	LanguageSpeakLevel    string  `json:"languages.progres_speaklevel,omitempty"`
	LanguageComprehension string  `json:"languages.progres_comprehensionlevel,omitempty"`
	LanguageMotherTongue  string  `json:"languages.progres_mothertongue,omitempty"`

	SpecificNeedCategory    *Lookup `json:"specificneeds.progres_spncategory2,omitempty"`
	SpecificNeedSubcategory *Lookup `json:"specificneeds.progres_spnsubcategory2,omitempty"`
	SpecificNeedCode        string  `json:"spncategory2code,omitempty"`
	SpecificNeedSubcode     string  `json:"spnsubcategory2code,omitempty"`
}

// DecisionBatch is the body DTP POSTs for flow F2d (PrimeroIncomingReferralDecision).
type DecisionBatch struct {
	QueryParams   json.RawMessage    `json:"__query_params,omitempty"`
	Interventions []ReferralDecision `json:"interventions"`
	RequestType   string             `json:"request_type,omitempty"`
}

// ReferralDecision is UNHCR's decision on a referral refbridge sent (F2),
// keyed by the org-referral id refbridge chose (contract progres-dtp §3.5).
type ReferralDecision struct {
	IndividualID       string `json:"progres_individualid,omitempty"`
	InteropReferralID  string `json:"progres_interoperabilityreferralid,omitempty"`
	InteropReferralNo  string `json:"progres_interoperabilityreferralnumber,omitempty"`
	RouteTo            string `json:"progres_interoperabilityreferralrouteto,omitempty"`
	RouteServiceUnit   string `json:"progres_interoperabilityreferralrouteserviceunito,omitempty"` // sic
	InterventionType   string `json:"progres_interventiontype,omitempty"`
	OrgReferralID      string `json:"progres_orgreferralid,omitempty"`
	ReviewBy           string `json:"progres_reviewby,omitempty"`
	ReviewDate         string `json:"progres_reviewdate,omitempty"`
	ReviewDecision     string `json:"progres_reviewdecision,omitempty"`
	RejectionReason    string `json:"progres_interoperabiltyreferralrejectionreason,omitempty"`   // sic, as DTP spells it
	RejectionComment   string `json:"progres_interoperabilityreferralrejectionomment,omitempty"`  // sic, as DTP spells it
	RejectionCommentOK string `json:"progres_interoperabilityreferralrejectioncomment,omitempty"` // correct spelling seen in one sample
}

// Comment returns the rejection comment under either spelling DTP has used.
func (d ReferralDecision) Comment() string {
	if d.RejectionComment != "" {
		return d.RejectionComment
	}
	return d.RejectionCommentOK
}

// InterventionStatus is what refbridge POSTs to DTP's
// ReceiveDecisionOutgoingReferral endpoint about a proGres intervention: the
// intake callback (Pending Acknowledgement / Delivery Fail) and the case
// worker's decision (acknowledged / rejected). case_id and primero_user are
// sent as null when no case exists.
type InterventionStatus struct {
	CaseID             *string `json:"case_id"`
	PrimeroUser        *string `json:"primero_user"`
	InterventionNumber string  `json:"progres_interventionnumber"`
	Status             string  `json:"status"`
	ClosureReason      string  `json:"closure_reason,omitempty"`
	RequestType        string  `json:"request_type,omitempty"`
}

// DTPReferral is the ReceiveIncomingReferral body: a Primero service referred
// to UNHCR (flow F2, contract progres-dtp §3.3). ID is
// "<case_id>#<last 12 characters of the service unique_id>" and comes back
// from DTP as progres_orgreferralid.
type DTPReferral struct {
	PrimeroUser               string  `json:"primero_user"`
	Position                  string  `json:"position"`
	Email                     string  `json:"email"`
	Phone                     string  `json:"phone"`
	FullName                  string  `json:"full_name"`
	RequestType               string  `json:"request_type"`
	ServiceImplementingAgency string  `json:"service_implementing_agency"`
	ServiceResponseDayTime    string  `json:"service_response_day_time,omitempty"`
	ServiceType               string  `json:"service_type,omitempty"`
	ServiceTypeOther          *string `json:"service_type_other"`
	ServiceReferralNotes      string  `json:"service_referral_notes,omitempty"`
	OwnedByAgencyID           string  `json:"owned_by_agency_id"`
	UNHCRIndividualNo         string  `json:"unhcr_individual_no,omitempty"`
	UNHCRIDNo                 string  `json:"unhcr_id_no,omitempty"`
	NameFirst                 string  `json:"name_first,omitempty"`
	NameLast                  string  `json:"name_last,omitempty"`
	NameMiddle                *string `json:"name_middle"`
	NameNickname              *string `json:"name_nickname"`
	DateOfBirth               string  `json:"date_of_birth,omitempty"`
	Sex                       string  `json:"sex,omitempty"`
	AddressCurrent            string  `json:"address_current,omitempty"`
	TelephoneCurrent          *string `json:"telephone_current"`
	Language                  *string `json:"language"`
	ID                        string  `json:"id"`
}
