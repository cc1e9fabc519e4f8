package profile

// Problem rules: the machine-readable codes mappings put in
// refbridge.Problem.Rule. They live here because the profile attaches the
// failure-callback sentences to them (callbacks.delivery_failed.<rule>).
const (
	RuleRequired       = "required"         // a field that must be present is empty or absent
	RuleUnknownCode    = "unknown_code"     // a code the profile's tables do not know
	RuleInvalidDate    = "invalid_date"     // a date that does not parse or cannot be true
	RuleFormat         = "format"           // a value not in the shape the contract gives
	RuleConflict       = "conflict"         // rows of one intervention that disagree
	RuleConsentMissing = "consent_missing"  // the profile's consent rule does not hold
	RuleNotFound       = "not_found"        // a referenced record is not in the input
	RuleNotReferable   = "not_referable"    // the service is not a referral to the other peer
	RuleNotFromProgres = "not_from_progres" // the service has no proGres intervention to answer
	RuleNotDecided     = "not_decided"      // the service has no accepted/rejected decision yet
	RuleContactMissing = "contact_missing"  // no user record can be the referral's contact
	RuleRevoked        = "revoked"          // the referral was revoked in Primero
	RuleMismatch       = "mismatch"         // two inputs that must agree do not
	RuleJSON           = "json"             // the input is not JSON of the expected shape
)

// Rules lists every problem rule.
func Rules() []string {
	return []string{RuleRequired, RuleUnknownCode, RuleInvalidDate, RuleFormat, RuleConflict,
		RuleConsentMissing, RuleNotFound, RuleNotReferable, RuleNotFromProgres, RuleNotDecided,
		RuleContactMissing, RuleRevoked, RuleMismatch, RuleJSON}
}
