package refbridge_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"refbridge"
)

func sampleEvent() refbridge.AuditEvent {
	return refbridge.AuditEvent{
		Seq: 7, At: time.Date(2025, 3, 1, 8, 0, 0, 123456000, time.UTC), Kind: refbridge.AuditShared,
		ExchangeID: "0195a3b0-0000-7000-8000-000000000001", Flow: refbridge.FlowReferral, Key: "case-1#000000000001",
		Peer: "dtp", Actor: "cp_supervisor", Fields: []string{"progres_interventionnumber", "sex"},
		Outcome: "delivered", Reason: "consent_override", Override: true, PrevHash: refbridge.AuditGenesisHash,
	}
}

// TestAuditHashGolden pins the canonical encoding: an event hashed today
// must hash the same in every later version, or every stored chain breaks.
// Change this value only together with the encoding tag.
func TestAuditHashGolden(t *testing.T) {
	t.Parallel()

	ev := sampleEvent()
	// Computed independently (Python: struct.pack(">I", len) + bytes per part, sha256).
	const want = "92e5baa7a4542d7691380f6d37fb486ade3fb05064f774b7f90eeeba7a9888a1"
	got := ev.ComputeHash()
	if got != want {
		t.Fatalf("ComputeHash = %s, want %s (did the canonical encoding change?)", got, want)
	}
	enc := ev.CanonicalEncoding()
	if !bytes.HasPrefix(enc, []byte("\x00\x00\x00\x12refbridge/audit/v1\x00\x00\x00\x017")) {
		t.Fatalf("encoding starts %q, want the length-prefixed tag then seq", enc[:30])
	}
	if !bytes.Contains(enc, []byte("\x00\x00\x00\x1eprogres_interventionnumber\x1fsex")) {
		t.Fatal("fields are not one length-prefixed part joined by U+001F")
	}
}

// TestAuditEncodingUnambiguous: events that differ in any part, or only in
// where one part ends and the next begins, never encode (or hash) alike.
func TestAuditEncodingUnambiguous(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		a, b func(*refbridge.AuditEvent)
	}{
		{"KeyPeerBoundary", func(e *refbridge.AuditEvent) { e.Key, e.Peer = "ab", "c" }, func(e *refbridge.AuditEvent) { e.Key, e.Peer = "a", "bc" }},
		{"ActorIntoFields", func(e *refbridge.AuditEvent) { e.Actor, e.Fields = "u", []string{"x"} }, func(e *refbridge.AuditEvent) { e.Actor, e.Fields = "", []string{"ux"} }},
		{"FieldsSplit", func(e *refbridge.AuditEvent) { e.Fields = []string{"a", "b"} }, func(e *refbridge.AuditEvent) { e.Fields = []string{"ab"} }},
		{"EmptyPartsMove", func(e *refbridge.AuditEvent) { e.Outcome, e.Reason = "x", "" }, func(e *refbridge.AuditEvent) { e.Outcome, e.Reason = "", "x" }},
		{"Seq", func(e *refbridge.AuditEvent) { e.Seq = 1 }, func(e *refbridge.AuditEvent) { e.Seq = 10 }},
		{"Override", func(e *refbridge.AuditEvent) { e.Override = true }, func(e *refbridge.AuditEvent) { e.Override = false }},
		{"Microsecond", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.At = e.At.Add(time.Microsecond) }},
		{"Kind", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.Kind = refbridge.AuditDelivered }},
		{"ExchangeID", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.ExchangeID += "x" }},
		{"Flow", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.Flow = refbridge.FlowReferralDecision }},
		{"PrevHash", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.PrevHash = strings.Repeat("1", 64) }},
		{"FieldOrder", func(*refbridge.AuditEvent) {}, func(e *refbridge.AuditEvent) { e.Fields = []string{"sex", "progres_interventionnumber"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := sampleEvent(), sampleEvent()
			tt.a(&a)
			tt.b(&b)
			if bytes.Equal(a.CanonicalEncoding(), b.CanonicalEncoding()) || a.ComputeHash() == b.ComputeHash() {
				t.Fatalf("%+v and %+v encode alike", a, b)
			}
		})
	}
}

// TestAuditEncodingIgnoresRepresentation: the same instant in another zone,
// and the Hash field itself, do not change the encoding.
func TestAuditEncodingIgnoresRepresentation(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		edit func(*refbridge.AuditEvent)
	}{
		{"OtherZone", func(e *refbridge.AuditEvent) { e.At = e.At.In(time.FixedZone("EAT", 3*3600)) }},
		{"HashField", func(e *refbridge.AuditEvent) { e.Hash = "anything" }},
		{"NilVersusEmptyFields", func(e *refbridge.AuditEvent) { e.Fields = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := sampleEvent(), sampleEvent()
			if tt.name == "NilVersusEmptyFields" {
				a.Fields = []string{}
			}
			tt.edit(&b)
			if a.ComputeHash() != b.ComputeHash() {
				t.Fatal("the same event hashes differently")
			}
		})
	}
}

func TestValidAuditField(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"JSONKey", "progres_interventionnumber", true},
		{"Path", "interventions[0].sex", true},
		{"NonASCII", "prénom", true},
		{"Empty", "", false},
		{"Space", "first name", false},
		{"Tab", "a\tb", false},
		{"Separator", "a\x1fb", false},
		{"NUL", "a\x00b", false},
		{"InvalidUTF8", "a\xffb", false},
		{"TooLong", strings.Repeat("x", 257), false},
		{"Longest", strings.Repeat("x", 256), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := refbridge.ValidAuditField(tt.in); got != tt.want {
				t.Fatalf("ValidAuditField(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAuditKinds(t *testing.T) {
	t.Parallel()

	kinds := refbridge.AuditKinds()
	if len(kinds) != 14 {
		t.Fatalf("%d kinds, want the 14 of DESIGN.md/issue 6", len(kinds))
	}
	seen := map[refbridge.AuditKind]bool{}
	for _, k := range kinds {
		if !k.Valid() || seen[k] {
			t.Fatalf("kind %q invalid or repeated", k)
		}
		seen[k] = true
	}
	for _, k := range []refbridge.AuditKind{"", "Shared", "exported"} {
		if k.Valid() {
			t.Fatalf("kind %q accepted", k)
		}
	}
}
