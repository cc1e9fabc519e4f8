package mapping

import (
	"reflect"
	"strings"

	"github.com/google/uuid"

	"refbridge"
)

// ServiceUniqueID returns the deterministic unique_id of the Primero service
// refbridge creates for a proGres intervention: a name-based UUID (version 5,
// SHA-1, RFC 9562) of the site id and the intervention number, in lower
// case as Primero requires. A re-delivered intervention therefore merges into
// its service instead of adding a second one.
func ServiceUniqueID(siteID, interventionNumber string) string {
	return nameUUID(siteID, "/", interventionNumber)
}

// CaseRecordID returns the id refbridge gives a Primero case it creates for
// a UNHCR individual: name-based like ServiceUniqueID, so two interventions
// for one child, or a create retried after a lost answer, name the same case
// and Primero refuses the second create (409) instead of making a twin.
func CaseRecordID(siteID, individualNo string) string {
	return nameUUID(siteID, "/case/", individualNo)
}

// OrgReferralID is the id a referral to proGres carries and DTP sends back
// as progres_orgreferralid: "<case_id>#<last 12 characters of the service
// unique_id>", the reference's form, kept for wire compatibility.
func OrgReferralID(caseID, serviceUniqueID string) string {
	if len(serviceUniqueID) < 12 {
		return caseID + "#" + serviceUniqueID
	}
	return caseID + "#" + serviceUniqueID[len(serviceUniqueID)-12:]
}

// namespace is refbridge's own UUID namespace (a random UUID fixed once):
// changing it would re-key every record already created.
func namespace() uuid.UUID { return uuid.MustParse("3c2f6f4e-8b1a-4d52-9e07-5b3da1c86094") }

// nameUUID is a version 5 (SHA-1, RFC 9562) UUID of the concatenated parts
// in refbridge's namespace, lower case as Primero requires. Site ids cannot
// hold "/", so no two (site, name) pairs give one name.
func nameUUID(parts ...string) string {
	return uuid.NewSHA1(namespace(), []byte(strings.Join(parts, ""))).String()
}

// IdentityDifferences names the identity fields where a case already holds
// a value that differs from what proGres sent. Only field names are
// reported, never either value: the focal point compares them in Primero.
func IdentityDifferences(existing, incoming refbridge.Case) []refbridge.Problem {
	// The person fields an intervention may fill; the case worker's value
	// always wins, a differing one is only reported.
	identityFields := []string{"UNHCRIDNo", "NameFirst", "NameMiddle", "NameLast", "NameNickname", "DateOfBirth", "Sex", "TelephoneCurrent", "AddressCurrent"}
	var out []refbridge.Problem
	ev, iv := reflect.ValueOf(existing), reflect.ValueOf(incoming)
	t := ev.Type()
	for _, name := range identityFields {
		have, want := ev.FieldByName(name).String(), iv.FieldByName(name).String()
		if blank(have) || blank(want) || have == want {
			continue
		}
		f, _ := t.FieldByName(name)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, refbridge.Problem{Field: tag, Rule: "differs",
			Detail: "Primero holds a different value than proGres sent; the case worker's value was kept"})
	}
	return out
}
