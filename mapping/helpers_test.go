package mapping_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/profile"
)

func TestMain(m *testing.M) {
	// -update rewrites the golden files. Registered here and read back
	// through flag.Lookup so the package keeps no variables.
	flag.Bool("update", false, "rewrite testdata/golden from the current mappings")
	flag.Parse()
	os.Exit(m.Run())
}

func updating() bool {
	return flag.Lookup("update").Value.(flag.Getter).Get().(bool)
}

// processingTime is the fixed "now" of every test: the fixtures' week.
func processingTime() time.Time { return time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC) }

// fixture reads a shared synthetic fixture.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeJSON[T any](t testing.TB, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// envelope is Primero's {"data": …} wrapper.
type envelope[T any] struct {
	Data T `json:"data"`
}

// rawBatch keeps each intervention as the bytes DTP sent.
type rawBatch struct {
	Interventions []json.RawMessage `json:"interventions"`
}

func interventions(t testing.TB) []refbridge.Intervention {
	t.Helper()
	return decodeJSON[refbridge.InterventionBatch](t, fixture(t, "dtp-interventions-inbound.json")).Interventions
}

func fixtureCase(t testing.TB) refbridge.Case {
	t.Helper()
	return decodeJSON[envelope[[]refbridge.Case]](t, fixture(t, "primero-case.json")).Data[0]
}

func fixtureUsers(t testing.TB) []refbridge.User {
	t.Helper()
	return decodeJSON[envelope[[]refbridge.User]](t, fixture(t, "primero-users.json")).Data
}

func fixtureReferral(t testing.TB, serviceID string) refbridge.Referral {
	t.Helper()
	for _, r := range decodeJSON[envelope[[]refbridge.Referral]](t, fixture(t, "primero-referrals.json")).Data {
		if r.ServiceRecordID == serviceID {
			return r
		}
	}
	return refbridge.Referral{}
}

// The fixture case's three services (see testdata/fixtures/README.md).
const (
	flow1Service  = "f1f1f1f1-0000-4000-8000-000000000001" // came from proGres, accepted
	unhcrService  = "f0f0f0f0-0000-4000-8000-0a1b2c3d4e5f" // referred to UNHCR
	otherService  = "f2f2f2f2-0000-4000-8000-000000000002" // implemented by DRC
	gambellaOwner = "progresv4_primero_intake@cpims-gambella.primero.org"
)

func gambellaSource(t testing.TB) []byte {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func gambella(t testing.TB) *profile.Profile {
	t.Helper()
	return gambellaWith(t)
}

// gambellaWith loads the Gambella profile with text edits applied, given as
// old, new pairs; each old text must occur exactly once, so an edit cannot
// silently stop applying when the profile changes.
func gambellaWith(t testing.TB, edits ...string) *profile.Profile {
	t.Helper()
	src := string(gambellaSource(t))
	for i := 0; i+1 < len(edits); i += 2 {
		if n := strings.Count(src, edits[i]); n != 1 {
			t.Fatalf("profile edit: %q occurs %d times in gambella.yaml, want 1", edits[i], n)
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	p, err := profile.Parse([]byte(src))
	if err != nil {
		t.Fatalf("edited profile: %v %v", err, refbridge.ErrorProblems(err))
	}
	return p
}

// withAdminFallback makes the fixtures' CPIMS admin the fallback contact, as
// the fixtures assume (Gambella's real account is marked for review).
func withAdminFallback(t testing.TB) *profile.Profile {
	t.Helper()
	return gambellaWith(t, "fallback_user: "+gambellaOwner, "fallback_user: test_admin")
}

// narrow gives UNICEF, the agency of every fixture exchange, a narrower ISP
// that shares no names, dates of birth or contact details of the child.
func narrow(t testing.TB) *profile.Profile {
	t.Helper()
	return gambellaWith(t, "isp:\n  progres_to_primero:\n", `isp:
  agencies:
    UNICEF:
      progres_to_primero:
        case: [status, owned_by, module_id, unhcr_individual_no, sex, language,
          services_section.unique_id, services_section.service_type, services_section.progres_interventionnumber]
      primero_to_progres:
        referral: [primero_user, position, email, phone, full_name, request_type, service_implementing_agency,
          service_type, owned_by_agency_id, unhcr_individual_no, id]
  progres_to_primero:
`)
}

// indentJSON formats raw for a golden file.
func indentJSON(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkGolden compares got with the golden file at path, or rewrites the
// file under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./mapping -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file; if the change is intended, review it and run with -update\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// problemKeys reduces problems to "field rule" strings for comparisons.
func problemKeys(ps []refbridge.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Field + " " + p.Rule
	}
	return out
}

// assertOnlyAllowed fails when v, encoded as it goes on the wire, carries a
// value in a field the ISP does not allow for kind and agency. Keys with no
// value (null or "") carry nothing; the DTP types always encode some keys.
func assertOnlyAllowed(t testing.TB, p *profile.Profile, kind profile.Kind, agency string, v any) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshal(t, v), &m); err != nil {
		t.Fatal(err)
	}
	for k, val := range m {
		if k == "services_section" && kind == profile.KindCase {
			items, _ := val.([]any)
			for _, it := range items {
				for sk, sv := range it.(map[string]any) {
					if hasValue(sv) && !p.Allows(kind, agency, "services_section."+sk) {
						t.Errorf("%s: services_section.%s is not allow-listed but carries a value", kind, sk)
					}
				}
			}
			continue
		}
		if hasValue(val) && !p.Allows(kind, agency, k) {
			t.Errorf("%s: %s is not allow-listed but carries a value", kind, k)
		}
	}
}

func hasValue(v any) bool { return v != nil && v != "" }
