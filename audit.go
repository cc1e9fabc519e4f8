package refbridge

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AuditKind is what an audit event records (DESIGN.md invariant 5).
type AuditKind string

// Audit event kinds.
const (
	AuditReceived       AuditKind = "received"        // a message was taken into the store
	AuditConsentChecked AuditKind = "consent_checked" // the consent rule was evaluated
	AuditHeld           AuditKind = "held"            // kept back (consent missing, needs a person)
	AuditReleased       AuditKind = "released"        // a held exchange may go on (e.g. consent recorded)
	AuditShared         AuditKind = "shared"          // fields left refbridge for a peer
	AuditDelivered      AuditKind = "delivered"       // the peer confirmed the effect
	AuditDecided        AuditKind = "decided"         // a decision reached its destination
	AuditFailed         AuditKind = "failed"          // refused input; the exchange ended
	AuditDead           AuditKind = "dead"            // dead-lettered for the focal point
	AuditPurged         AuditKind = "purged"          // the personal payload was deleted
	AuditViewed         AuditKind = "viewed"          // someone looked at an exchange in the console
	AuditConfigChanged  AuditKind = "config_changed"  // profile or configuration changed
	AuditRetried        AuditKind = "retried"         // the focal point retried a dead exchange
	AuditDiscarded      AuditKind = "discarded"       // the focal point discarded a dead exchange
)

// AuditKinds lists every audit kind.
func AuditKinds() []AuditKind {
	return []AuditKind{AuditReceived, AuditConsentChecked, AuditHeld, AuditReleased, AuditShared, AuditDelivered,
		AuditDecided, AuditFailed, AuditDead, AuditPurged, AuditViewed, AuditConfigChanged, AuditRetried, AuditDiscarded}
}

// Valid reports whether k is one of AuditKinds.
func (k AuditKind) Valid() bool {
	for _, x := range AuditKinds() {
		if k == x {
			return true
		}
	}
	return false
}

// AuditGenesisHash is the PrevHash of the first event of a chain.
const AuditGenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// auditFieldSep joins field names in the canonical encoding; ValidAuditField
// keeps it (a control character) out of names, so the join is unambiguous.
const auditFieldSep = "\x1f"

// auditEncodingTag opens every canonical encoding, so that a hash of an
// audit event can never be mistaken for a hash of anything else, and a
// future encoding can be told apart.
const auditEncodingTag = "refbridge/audit/v1"

// AuditEvent is one entry of the append-only, hash-chained audit trail: who
// permitted what to go where, when, with what outcome. It holds ids, codes
// and field names only, never a personal value, so it outlives the purge of
// the exchange's payload.
type AuditEvent struct {
	// Seq numbers the chain 1, 2, 3… with no gap; assigned by the store.
	Seq int64 `json:"seq"`
	// At is when the store recorded the event (UTC, microseconds); assigned by the store.
	At         time.Time `json:"at"`
	Kind       AuditKind `json:"kind"`
	ExchangeID string    `json:"exchange_id"`
	Flow       Flow      `json:"flow"`
	Key        string    `json:"key"`
	// Peer is the other system: "dtp" or "primero".
	Peer string `json:"peer"`
	// Actor is who permitted the share: the Primero user who created the
	// referral or gave consent, or the proGres requester — a user_name or
	// code, never a person's name.
	Actor string `json:"actor"`
	// Fields are the names of the fields shared, never their values.
	Fields []string `json:"fields"`
	// Outcome is the resulting state or code (an intake outcome, a state).
	Outcome string `json:"outcome"`
	// Reason is a machine code (consent_missing, retry_budget_spent…).
	Reason string `json:"reason"`
	// Override says consent was overridden (by Actor), as the profile allows.
	Override bool `json:"override"`
	// PrevHash is the previous event's Hash (AuditGenesisHash for the first);
	// Hash is ComputeHash of this event. Both assigned by the store.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// CanonicalEncoding is the byte string Hash is computed over: the tag
// "refbridge/audit/v1", then seq (decimal), at (UTC, RFC 3339 with
// nanoseconds as needed), kind, exchange id, flow, key, peer, actor, the
// field names joined by U+001F, outcome, reason, override ("true"/"false")
// and prev hash — each part preceded by its length in bytes as a 4-byte
// big-endian integer, so no two different events encode alike. Hash itself
// is not part of it.
func (e AuditEvent) CanonicalEncoding() []byte {
	parts := [...]string{
		auditEncodingTag,
		strconv.FormatInt(e.Seq, 10),
		e.At.UTC().Format(time.RFC3339Nano),
		string(e.Kind),
		e.ExchangeID,
		string(e.Flow),
		e.Key,
		e.Peer,
		e.Actor,
		strings.Join(e.Fields, auditFieldSep),
		e.Outcome,
		e.Reason,
		strconv.FormatBool(e.Override),
		e.PrevHash,
	}
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// ComputeHash returns the lower-case hex SHA-256 of CanonicalEncoding: the
// value Hash must hold and the next event's PrevHash.
func (e AuditEvent) ComputeHash() string {
	sum := sha256.Sum256(e.CanonicalEncoding())
	return hex.EncodeToString(sum[:])
}

// ValidAuditField reports whether name can be recorded as a shared field's
// name: 1–256 bytes of UTF-8 without control characters or white space.
// (Field names are JSON keys or paths such as "interventions[0].sex"; the
// rule keeps the canonical encoding's separator and the CSV export's space
// separator out of them.)
func ValidAuditField(name string) bool {
	if name == "" || len(name) > 256 || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// AuditCSVHeader names the columns of AuditEvent.CSVRecord.
func AuditCSVHeader() []string {
	return []string{"seq", "at", "kind", "exchange_id", "flow", "key", "peer", "actor", "fields", "outcome", "reason", "override", "prev_hash", "hash"}
}

// CSVRecord is the event as one CSV row for the agencies' accountability
// reviews, fields joined by a space (a field name holds none). Keys and
// actors come from peers, so a cell a spreadsheet would
// run as a formula (starting with =, +, -, @, tab or CR) is prefixed with a
// quote; the JSON export keeps every value exactly.
func (e AuditEvent) CSVRecord() []string {
	row := []string{strconv.FormatInt(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), string(e.Kind), e.ExchangeID, string(e.Flow),
		e.Key, e.Peer, e.Actor, strings.Join(e.Fields, " "), e.Outcome, e.Reason, strconv.FormatBool(e.Override), e.PrevHash, e.Hash}
	for i, v := range row {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			row[i] = "'" + v
		}
	}
	return row
}
