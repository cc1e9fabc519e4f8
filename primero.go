package refbridge

import (
	"encoding/json"
	"time"
)

// Primero referral statuses (contract primero-v2 §3).
const (
	ReferralInProgress = "in_progress"
	ReferralAccepted   = "accepted"
	ReferralRejected   = "rejected"
	ReferralDone       = "done"
	ReferralRevoked    = "revoked"
)

// Case is a Primero v2 case record as the API returns and accepts it. Only
// fields the flows, the consent rule or the operator need are declared; every
// field is optional on the wire (a PATCH sends only what changes), so scalars
// that may legitimately be false or zero are pointers.
type Case struct {
	ID                  string          `json:"id,omitempty"`
	Enabled             *bool           `json:"enabled,omitempty"`
	CaseID              string          `json:"case_id,omitempty"`
	CaseIDDisplay       json.RawMessage `json:"case_id_display,omitempty"` // a string or [code, short_id]
	ShortID             string          `json:"short_id,omitempty"`
	UniqueIdentifier    string          `json:"unique_identifier,omitempty"`
	Status              string          `json:"status,omitempty"`
	RecordState         *bool           `json:"record_state,omitempty"`
	ModuleID            string          `json:"module_id,omitempty"`
	Workflow            string          `json:"workflow,omitempty"`
	OwnedBy             string          `json:"owned_by,omitempty"`
	OwnedByAgencyID     string          `json:"owned_by_agency_id,omitempty"`
	OwnedByGroups       []string        `json:"owned_by_groups,omitzero"`
	AssignedUserNames   []string        `json:"assigned_user_names,omitzero"`
	AssociatedUserNames []string        `json:"associated_user_names,omitzero"`
	CreatedBy           string          `json:"created_by,omitempty"`
	CreatedOrganization string          `json:"created_organization,omitempty"`
	CreatedAt           time.Time       `json:"created_at,omitzero"`
	LastUpdatedAt       time.Time       `json:"last_updated_at,omitzero"`
	LastUpdatedBy       string          `json:"last_updated_by,omitempty"`
	RecordInScope       *bool           `json:"record_in_scope,omitempty"`

	Name               string   `json:"name,omitempty"`
	NameFirst          string   `json:"name_first,omitempty"`
	NameMiddle         string   `json:"name_middle,omitempty"`
	NameLast           string   `json:"name_last,omitempty"`
	NameNickname       string   `json:"name_nickname,omitempty"`
	DateOfBirth        string   `json:"date_of_birth,omitempty"`
	Age                *int     `json:"age,omitempty"`
	Sex                string   `json:"sex,omitempty"`
	RegistrationDate   string   `json:"registration_date,omitempty"`
	UNHCRIDNo          string   `json:"unhcr_id_no,omitempty"`
	UNHCRIndividualNo  string   `json:"unhcr_individual_no,omitempty"`
	TelephoneCurrent   string   `json:"telephone_current,omitempty"`
	AddressCurrent     string   `json:"address_current,omitempty"`
	Language           []string `json:"language,omitzero"`
	InterviewSubject   string   `json:"interview_subject,omitempty"`
	ProtectionStatus   string   `json:"protection_status,omitempty"`
	ProtectionConcerns []string `json:"protection_concerns,omitzero"`
	RiskLevel          string   `json:"risk_level,omitempty"`

	// Consent (primero-v2 §2 "Consent"). consent_reporting and
	// consent_for_tracing are radio buttons that may arrive as "true"/"false".
	ConsentForServices       *bool     `json:"consent_for_services,omitempty"`
	DisclosureOtherOrgs      *bool     `json:"disclosure_other_orgs,omitempty"`
	ConsentReporting         *FlexBool `json:"consent_reporting,omitempty"`
	ConsentForTracing        *FlexBool `json:"consent_for_tracing,omitempty"`
	ConsentInfoSharing       *FlexBool `json:"consent_info_sharing,omitempty"`
	ConsentForDataCollection *bool     `json:"consent_for_data_collection,omitempty"`
	UNHCRExportOptIn         *bool     `json:"unhcr_export_opt_in,omitempty"`

	Services []Service `json:"services_section,omitzero"`

	// Sync status write-back (primero-v2 §7); write-only attributes.
	MarkSynced       *bool  `json:"mark_synced,omitempty"`
	MarkSyncedURL    string `json:"mark_synced_url,omitempty"`
	MarkSyncedStatus string `json:"mark_synced_status,omitempty"`
}

// Service returns the service with the given unique_id, or nil.
func (c *Case) Service(uniqueID string) *Service {
	for i := range c.Services {
		if c.Services[i].UniqueID == uniqueID {
			return &c.Services[i]
		}
	}
	return nil
}

// Service is one item of a case's services_section subform. Primero merges
// subform items by unique_id; Destroy removes the item on PATCH.
type Service struct {
	UniqueID                     string   `json:"unique_id,omitempty"`
	ServiceResponseType          string   `json:"service_response_type,omitempty"`
	ServiceType                  string   `json:"service_type,omitempty"`
	ServiceTypeOther             string   `json:"service_type_other,omitempty"`
	ServiceResponseDayTime       string   `json:"service_response_day_time,omitempty"`
	ServiceResponseTimeframe     string   `json:"service_response_timeframe,omitempty"`
	ServiceAppointmentDate       string   `json:"service_appointment_date,omitempty"`
	ImplementingAgency           string   `json:"service_implementing_agency,omitempty"`
	ImplementingAgencyIndividual string   `json:"service_implementing_agency_individual,omitempty"`
	ServiceProvider              string   `json:"service_provider,omitempty"`
	DeliveryLocation             string   `json:"service_delivery_location,omitempty"`
	ServiceLocation              string   `json:"service_location,omitempty"`
	ReferralNotes                string   `json:"service_referral_notes,omitempty"`
	StatusReferred               *bool    `json:"service_status_referred,omitempty"`
	Implemented                  string   `json:"service_implemented,omitempty"`
	ImplementedDayTime           string   `json:"service_implemented_day_time,omitempty"`
	NoteOnReferralFromProvider   string   `json:"note_on_referral_from_provider,omitempty"`
	Referral                     string   `json:"service_referral,omitempty"` // external_referral | internal_referral
	ReferralFollowUpMedium       []string `json:"referral_follow_up_medium,omitzero"`
	RequestExternal              *bool    `json:"service_request_external,omitempty"`
	RequestTitle                 string   `json:"service_request_title,omitempty"`
	RequestAgency                string   `json:"service_request_agency,omitempty"`
	RequestPhone                 string   `json:"service_request_phone,omitempty"`
	RequestEmail                 string   `json:"service_request_email,omitempty"`
	UNHCRReferralStatus          string   `json:"unhcr_referral_status,omitempty"` // pending | accepted | rejected
	UNHCRRejectionReason         string   `json:"unhcr_referral_rejection_reason,omitempty"`
	InterventionNumber           string   `json:"progres_interventionnumber,omitempty"`
	Destroy                      bool     `json:"_destroy,omitempty"`
}

// Referral is a Primero transition of type Referral (primero-v2 §3): a
// service of a case referred to a user, possibly of another agency.
type Referral struct {
	ID                        string    `json:"id,omitempty"`
	Type                      string    `json:"type,omitempty"`
	RecordID                  string    `json:"record_id,omitempty"`
	RecordType                string    `json:"record_type,omitempty"`
	Status                    string    `json:"status,omitempty"`
	TransitionedBy            string    `json:"transitioned_by,omitempty"`
	TransitionedTo            string    `json:"transitioned_to,omitempty"`
	TransitionedToAgency      string    `json:"transitioned_to_agency,omitempty"`
	TransitionedToRemote      string    `json:"transitioned_to_remote,omitempty"`
	Remote                    *bool     `json:"remote,omitempty"`
	TypeOfExport              string    `json:"type_of_export,omitempty"`
	Service                   string    `json:"service,omitempty"`
	ServiceRecordID           string    `json:"service_record_id,omitempty"`
	Notes                     *string   `json:"notes,omitempty"`
	ConsentOverridden         *bool     `json:"consent_overridden,omitempty"`
	ConsentIndividualTransfer *bool     `json:"consent_individual_transfer,omitempty"`
	AuthorizedRoleUniqueID    string    `json:"authorized_role_unique_id,omitempty"`
	AllowCaseCreation         *bool     `json:"allow_case_creation,omitempty"`
	RejectedReason            string    `json:"rejected_reason,omitempty"`
	RejectionNote             string    `json:"rejection_note,omitempty"`
	RespondedAt               time.Time `json:"responded_at,omitzero"`
	CreatedAt                 time.Time `json:"created_at,omitzero"`
	RecordAccessDenied        *bool     `json:"record_access_denied,omitempty"`
	UserCanAcceptOrReject     *bool     `json:"user_can_accept_or_reject,omitempty"`
}

// User is a Primero user account (primero-v2 §4). Phone may be null.
type User struct {
	ID                       int       `json:"id,omitempty"`
	UserName                 string    `json:"user_name"`
	FullName                 string    `json:"full_name,omitempty"`
	Code                     string    `json:"code,omitempty"`
	Position                 string    `json:"position,omitempty"`
	Email                    string    `json:"email,omitempty"`
	Phone                    *string   `json:"phone"`
	AgencyID                 int       `json:"agency_id,omitempty"`
	AgencyOffice             string    `json:"agency_office,omitempty"`
	Location                 string    `json:"location,omitempty"`
	Services                 []string  `json:"services,omitzero"`
	Disabled                 *bool     `json:"disabled,omitempty"`
	RoleID                   string    `json:"role_id,omitempty"`
	RoleUniqueID             string    `json:"role_unique_id,omitempty"`
	UserGroupUniqueIDs       []string  `json:"user_group_unique_ids,omitzero"`
	ModuleUniqueIDs          []string  `json:"module_unique_ids,omitzero"`
	TimeZone                 string    `json:"time_zone,omitempty"`
	Locale                   string    `json:"locale,omitempty"`
	SendMail                 *bool     `json:"send_mail,omitempty"`
	CreatedAt                time.Time `json:"created_at,omitzero"`
	UpdatedAt                time.Time `json:"updated_at,omitzero"`
	IdentityProviderUniqueID string    `json:"identity_provider_unique_id,omitempty"`
}

// SyncStatus is the write-back a bridge leaves on a case for the case worker
// to see (primero-v2 §7). It is sent as the case fields it names, exactly as
// Case encodes them.
type SyncStatus struct {
	Synced bool   `json:"mark_synced"`
	URL    string `json:"mark_synced_url,omitempty"`
	Status string `json:"mark_synced_status,omitempty"`
}

// FlexBool decodes a JSON boolean or the strings "true"/"false", as Primero
// radio-button consent fields may hold either. It encodes as it was decoded.
type FlexBool struct {
	Value    bool
	AsString bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *FlexBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true":
		*b = FlexBool{Value: true}
	case "false":
		*b = FlexBool{Value: false}
	case `"true"`:
		*b = FlexBool{Value: true, AsString: true}
	case `"false"`:
		*b = FlexBool{Value: false, AsString: true}
	default:
		return Errorf(EInvalid, "want true, false, \"true\" or \"false\"")
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (b FlexBool) MarshalJSON() ([]byte, error) {
	s := "false"
	if b.Value {
		s = "true"
	}
	if b.AsString {
		s = `"` + s + `"`
	}
	return []byte(s), nil
}
