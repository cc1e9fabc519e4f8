package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"refbridge/profile"
)

// brokenGambella writes a copy of the Gambella profile with one mistake of
// each kind `profile check` must find, and returns its path and the YAML
// path of every error it must list.
func brokenGambella(t *testing.T) (path string, want []string) {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	edits := []struct{ old, new, path string }{
		{"    progres: Relocation\n", "    progres: Relocation\n    implementing_agency: DRC\n", "$.services[21].implementing_agency"},
		{"  - progres: \"125080001\"", "  - progres: \"125080000\"", "$.sex[1].progres"},
		{"    progres: Shelter\n", "", "$.services[18].progres"},
		{"      - name_nickname\n      - date_of_birth\n      - age\n", "      - nick_name\n      - date_of_birth\n      - age\n", "$.isp.progres_to_primero.case[9]"},
		{"    attested_by: UNHCR\n", "", "$.consent.progres_to_primero"},
		{"    label: Alternative care\n", "    label: {en: Alternative care, am: አማራጭ እንክብካቤ}\n", "$.services[1].label"},
	}
	for _, e := range edits {
		if strings.Count(s, e.old) != 1 {
			t.Fatalf("edit %q no longer applies to gambella.yaml", e.old)
		}
		s = strings.Replace(s, e.old, e.new, 1)
		want = append(want, e.path)
	}
	path = filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func TestCmdProfileCheck(t *testing.T) {
	t.Parallel()
	broken, brokenPaths := brokenGambella(t)
	tests := []struct {
		name      string
		args      []string
		wantErr   func(error) bool
		wantLines []string
	}{
		{"embedded gambella is valid; review marks are warnings", []string{"check", "gambella"}, wantNoErr,
			[]string{"warning: $.services[5].review", "profile gambella: valid, 0 errors, 13 warnings"}},
		{"a broken copy lists every problem", []string{"check", broken}, wantProblemsFound,
			append(prefixEach("error: ", brokenPaths), "INVALID")},
		{"no subcommand", nil, wantUsageErr, nil},
		{"unknown subcommand", []string{"lint", "gambella"}, wantUsageErr, nil},
		{"no profile", []string{"check"}, wantUsageErr, nil},
		{"two profiles", []string{"check", "gambella", "gambella"}, wantUsageErr, nil},
		{"missing file", []string{"check", filepath.Join(t.TempDir(), "none.yaml")}, wantOtherErr, nil},
		{"unknown embedded name", []string{"check", "atlantis"}, wantOtherErr, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := cmdProfile(context.Background(), tt.args, &stdout, &stderr)
			if !tt.wantErr(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			for _, want := range tt.wantLines {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}

// TestProfileCheckExitCodes runs the command line as a shell would.
func TestProfileCheckExitCodes(t *testing.T) {
	t.Parallel()
	broken, _ := brokenGambella(t)
	for args, want := range map[string]int{"profile check gambella": 0, "profile check " + broken: 1, "profile": 2,
		"profile check --help": 0, "profile -h": 0} {
		var stdout, stderr bytes.Buffer
		if got := run(context.Background(), strings.Fields(args), strings.NewReader(""), &stdout, &stderr); got != want {
			t.Errorf("refbridge %s: exit %d, want %d\n%s%s", args, got, want, stdout.String(), stderr.String())
		}
	}
}

func prefixEach(prefix string, s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = prefix + x
	}
	return out
}

func wantNoErr(err error) bool { return err == nil }

func wantProblemsFound(err error) bool {
	var pf problemsFound
	return errors.As(err, &pf)
}

func wantUsageErr(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func wantOtherErr(err error) bool { return err != nil && !wantUsageErr(err) && !wantProblemsFound(err) }
