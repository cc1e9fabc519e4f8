package refbridge

import "time"

// Role is what a console account may do (issue #8).
type Role string

// Console roles.
const (
	// RoleAdmin manages accounts, keys and the profile, and may do
	// everything a focal point does.
	RoleAdmin Role = "admin"
	// RoleFocalPoint sees and acts on exchanges (retry, discard) and may
	// open the personal details of one referral, each view audited.
	RoleFocalPoint Role = "focal_point"
	// RoleAuditor reads the audit trail and the metrics; never personal data.
	RoleAuditor Role = "auditor"
)

// Roles lists every console role.
func Roles() []Role { return []Role{RoleAdmin, RoleFocalPoint, RoleAuditor} }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, x := range Roles() {
		if r == x {
			return true
		}
	}
	return false
}

// Languages lists the console's interface languages (BCP 47 tags).
func Languages() []string { return []string{"en", "fr", "ar", "am"} }

// Account is a console user. Name is a login handle (e.g. "fp.gambella"),
// not a person's name: it is recorded as the actor of audit events.
type Account struct {
	Name     string
	Role     Role
	Language string
	Disabled bool
	// PasswordHash is the encoded argon2id hash; never shown.
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Session is a logged-in console session. The token itself lives only in
// the user's cookie; the store keeps its hash.
type Session struct {
	Account   Account
	CreatedAt time.Time
	ExpiresAt time.Time
}
