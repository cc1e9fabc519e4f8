package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"refbridge"
	"refbridge/profile"
)

// goldenDir holds the mapping package's reviewed inputs and outputs; the
// command must print exactly those.
func goldenDir() string { return filepath.Join("..", "..", "mapping", "testdata", "golden") }

// adminFallbackProfile writes the Gambella profile with the fixtures' admin
// as fallback contact, as the mapping goldens named "*-fallback-admin" and
// "*-no-consent" were made with.
func adminFallbackProfile(t *testing.T) string {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "fallback_user: progresv4_primero_intake@cpims-gambella.primero.org", "fallback_user: test_admin", 1)
	path := filepath.Join(t.TempDir(), "gambella-admin.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCmdMapPrintsTheGoldenFiles(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join(goldenDir(), "*", "*.in.json"))
	if err != nil || len(inputs) < 15 {
		t.Fatalf("golden inputs: %d, %v", len(inputs), err)
	}
	admin := adminFallbackProfile(t)
	for _, in := range inputs {
		flow := filepath.Base(filepath.Dir(in))
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(flow+"/"+name, func(t *testing.T) {
			t.Parallel()
			p := "gambella"
			if strings.HasSuffix(name, "-fallback-admin") || strings.HasSuffix(name, "-no-consent") {
				p = admin
			}
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in.json") + ".out.json")
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err = cmdMap(context.Background(), []string{flow, "--profile", p, "--now", "2024-05-10T12:00:00Z"}, bytes.NewReader(input), &stdout, &stderr)
			if invalid := bytes.HasPrefix(want, []byte("[")); invalid != wantProblemsFound(err) || (!invalid && err != nil) {
				t.Fatalf("err = %v for golden output starting %.1s", err, want)
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("stdout differs from %s:\n%s", strings.TrimSuffix(in, ".in.json")+".out.json", stdout.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
}

func TestCmdMapArguments(t *testing.T) {
	t.Parallel()
	decision := `{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080000"}`
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr func(error) bool
		stdout  string
	}{
		{"flags after FLOW", []string{"dtp-decision-to-referral", "--profile", "gambella"}, decision, wantNoErr, "\"status\": \"accepted\""},
		{"flags before FLOW", []string{"-profile=gambella", "dtp-decision-to-referral"}, decision, wantNoErr, "\"status\": \"accepted\""},
		{"help", []string{"-h"}, "", wantNoErr, "Usage: refbridge map"},
		{"no FLOW", []string{"--profile", "gambella"}, decision, wantUsageErr, ""},
		{"unknown FLOW", []string{"decision-to-nowhere", "--profile", "gambella"}, decision, wantUsageErr, ""},
		{"two FLOWs", []string{"dtp-decision-to-referral", "intervention-to-case", "--profile", "gambella"}, decision, wantUsageErr, ""},
		{"no --profile", []string{"dtp-decision-to-referral"}, decision, wantUsageErr, ""},
		{"bad --now", []string{"dtp-decision-to-referral", "--profile", "gambella", "--now", "yesterday"}, decision, wantUsageErr, ""},
		{"unknown flag", []string{"dtp-decision-to-referral", "--profile", "gambella", "--verbose"}, decision, wantUsageErr, ""},
		{"invalid profile", []string{"dtp-decision-to-referral", "--profile", broken}, decision, wantOtherErr, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := cmdMap(context.Background(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if !tt.wantErr(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.stdout)
			}
		})
	}
}

// TestCmdMapInvalidInput: exit 1, and stdout is only the JSON list of
// problems, quoting nothing of the input.
func TestCmdMapInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct{ flow, stdin string }{
		{"intervention-to-case", `{"individuals.progres_givenname": "Testchild"`},
		{"intervention-to-case", `{"individuals.progres_givenname": "Testchild", "individuals.progres_dateofbirth": "2014-13-45"}`},
		{"case-to-dtp-referral", `{"case": {"name_first": "Testchild", "sex": "secret_code"}}`},
		{"service-decision-to-dtp", ``},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := cmdMap(context.Background(), []string{tt.flow, "--profile", "gambella"}, strings.NewReader(tt.stdin), &stdout, &stderr)
		if !wantProblemsFound(err) {
			t.Fatalf("%s: err = %v", tt.flow, err)
		}
		var ps []refbridge.Problem
		dec := json.NewDecoder(&stdout)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ps); err != nil || dec.More() || len(ps) == 0 {
			t.Fatalf("%s: stdout is not only a JSON list of problems: %v", tt.flow, err)
		}
		for _, p := range ps {
			if p.Field == "" || p.Rule == "" || p.Detail == "" || strings.Contains(p.Detail, "Testchild") || strings.Contains(p.Detail, "secret_code") || strings.Contains(p.Detail, "2014") {
				t.Errorf("%s: problem %+v", tt.flow, p)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"map", "intervention-to-case", "--profile", "gambella"}, strings.NewReader("{}"), &stdout, &stderr)
	if code != 1 || stderr.Len() != 0 {
		t.Errorf("exit %d, stderr %q; want exit 1 and nothing on stderr", code, stderr.String())
	}
}
