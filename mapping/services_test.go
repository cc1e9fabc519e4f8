package mapping_test

import (
	"slices"
	"testing"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

// contractServices are the Primero service types of the reference's
// outbound table (contracts/progres-dtp.md §5.2), in the contract's order.
func contractServices() []string {
	return []string{
		"alternative_care", "focuses_non_specialized_mhpss_care", "food", "security_e_g_safe_shelter",
		"education_formal", "non_formal_education", "family_tracing_and_reunification",
		"basic_psychosocial_support", "specialized_mhpss_services", "non_food_items", "cash_assistance",
		"livelihoods", "medical", "nutrition", "legal_support", "documentation",
		"services_for_children_with_disabilities", "sexual_and_reproductive_health", "shelter", "wash",
		"durable_solution_in_coordination_with_unhcr", "relocation", "other_please_specify",
	}
}

// TestEveryContractServiceMapsBothWays sends each contract service to proGres
// (CaseToDTPReferral) and back (InterventionToCase): it must return as itself,
// or as its row's inbound_as where proGres has one name for several.
func TestEveryContractServiceMapsBothWays(t *testing.T) {
	t.Parallel()
	p := withAdminFallback(t)
	rows := map[string]profile.Service{}
	for _, s := range p.Services() {
		rows[s.Primero] = s
	}
	if len(contractServices()) != 23 {
		t.Fatalf("the contract lists 23 services, the test %d", len(contractServices()))
	}
	for _, service := range contractServices() {
		t.Run(service, func(t *testing.T) {
			t.Parallel()
			row, listed := rows[service]
			if !listed {
				t.Fatalf("%s is not in the profile's service table", service)
			}
			in := mapping.ReferralInput{Case: fixtureCase(t), ServiceUniqueID: unhcrService, Referral: fixtureReferral(t, unhcrService), Users: fixtureUsers(t)}
			in.Case.Services[1].ServiceType = service
			out, ps := mapping.CaseToDTPReferral(p, in)
			if ps != nil || out.ServiceType == "" {
				t.Fatalf("out to proGres: %q, problems %v", out.ServiceType, ps)
			}

			iv := interventions(t)[0]
			iv.InterventionType = out.ServiceType
			back, ps := mapping.InterventionToCase(p, mapping.FoldInterventions([]refbridge.Intervention{iv})[0], processingTime())
			if ps != nil {
				t.Fatalf("%q back from proGres: %v", out.ServiceType, ps)
			}
			want := service
			if row.InboundAs != "" {
				want = row.InboundAs
			}
			if got := back.Case.Services[0].ServiceType; got != want {
				t.Fatalf("%s → %q → %s, want %s", service, out.ServiceType, got, want)
			}
			// The way back must itself be a service that goes out again.
			if _, ok := p.ServiceToProgres(want); !ok {
				t.Fatalf("%s, the way back of %s, cannot be sent to proGres", want, service)
			}
		})
	}
}

// TestReferenceInboundServicesStillArrive checks that the four intervention
// types the reference accepted (contract §5.1) are all still accepted, with
// the tracing service no longer filed as "food".
func TestReferenceInboundServicesStillArrive(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	want := map[string]string{
		"Alternative Care":                 "alternative_care",
		"BID":                              "focuses_non_specialized_mhpss_care",
		"BIA":                              "focuses_non_specialized_mhpss_care",
		"Family Tracing and Reunification": "family_tracing_and_reunification",
	}
	for name, service := range want {
		if got, ok := p.ServiceFromProgres(name); !ok || got != service {
			t.Errorf("%q → %q (%v), want %q", name, got, ok, service)
		}
	}
	if got := p.Services(); !slices.ContainsFunc(got, func(s profile.Service) bool { return s.Primero == "food" && s.Progres == "Food Service" }) {
		t.Errorf("food is not sent as Food Service")
	}
}
