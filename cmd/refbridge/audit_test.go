package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"refbridge"
	"refbridge/store"
)

// auditT0 is when the fixture's first event is recorded; each later
// operation is a minute later.
var auditT0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// auditSetup writes a configuration in a temp dir and a store holding
// these 9 events (minutes after auditT0 in brackets), then closes it:
//
//	1-3 received [0]   4 held [1]   5 shared [2]   6 delivered, 7 purged [3]
//	8 config_changed [4]   9 viewed [5]
func auditSetup(t *testing.T) (cfg, dbPath string, evs []refbridge.AuditEvent) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	keys, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg = writeConfig(t, dir, keyText)
	dbPath = filepath.Join(dir, "refbridge.db")
	now := auditT0
	db, err := store.Open(ctx, store.Config{Path: dbPath, Keys: keys, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var items []refbridge.Inbound
	for _, k := range []string{"TST-1", "TST-2"} {
		items = append(items, refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: k, ContentHash: "h", Payload: []byte(`{"name":"Testchild"}`)})
	}
	items = append(items, refbridge.Inbound{Flow: refbridge.FlowReferral, Key: "case-1#000000000001", ContentHash: "h", Payload: []byte(`{}`)})
	got, err := db.Receive(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		id string
		c  store.Change
	}{
		{got[2].ExchangeID, store.Change{To: refbridge.StateHeld, Reason: "consent_missing", Actor: "cp_worker_1"}},
		{got[2].ExchangeID, store.Change{To: refbridge.StateDelivered, AuditKind: refbridge.AuditShared, Actor: "cp_supervisor",
			Fields: []string{"progres_interventionnumber", "sex"}, Override: true}},
		{got[0].ExchangeID, store.Change{To: refbridge.StateDone, Actor: "progres_requester"}},
	}
	for _, s := range steps {
		now = now.Add(time.Minute)
		if _, err := db.Transition(ctx, s.id, s.c); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	if err := db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "admin", Reason: "profile_reloaded"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: got[1].ExchangeID, Actor: "focal_point"}); err != nil {
		t.Fatal(err)
	}
	if evs, _, err = db.AuditEvents(ctx, store.AuditFilter{}); err != nil || len(evs) != 9 {
		t.Fatalf("fixture: %d events, %v; want 9", len(evs), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return cfg, dbPath, evs
}

// tamperDB runs SQL on the closed store's file, lifting the append-only
// triggers first, as someone with write access to the file could.
func tamperDB(t *testing.T, path string, qs ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range append([]string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`}, qs...) {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		tamper   []string
		wantCode int
		wantOut  []string // "LAST" stands for the last event's hash
	}{
		{name: "Intact", wantCode: 0, wantOut: []string{"audit chain intact: 9 events, last hash LAST"}},
		{name: "ChangedRow", tamper: []string{`UPDATE audit_events SET actor = 'someone_else' WHERE seq = 5`},
			wantCode: 1, wantOut: []string{"audit chain BROKEN: audit event 5:", "[changed]", "4 events before it intact"}},
		{name: "DeletedRow", tamper: []string{`DELETE FROM audit_events WHERE seq = 3`},
			wantCode: 1, wantOut: []string{"audit event 3:", "[deleted]"}},
		{name: "ReorderedRows", tamper: []string{`UPDATE audit_events SET seq = -1 WHERE seq = 6`,
			`UPDATE audit_events SET seq = 6 WHERE seq = 7`, `UPDATE audit_events SET seq = 7 WHERE seq = -1`},
			wantCode: 1, wantOut: []string{"audit event 6:", "[reordered]"}},
		{name: "DeletedLastRow", tamper: []string{`DELETE FROM audit_events WHERE seq = 9`},
			wantCode: 1, wantOut: []string{"audit event 9:", "[deleted]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, dbPath, evs := auditSetup(t)
			if len(tt.tamper) > 0 {
				tamperDB(t, dbPath, tt.tamper...)
			}
			code, out, errs := runCmd(t, "audit", "verify", "--config", cfg)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.wantCode, out, errs)
			}
			for _, w := range tt.wantOut {
				w = strings.ReplaceAll(w, "LAST", evs[len(evs)-1].Hash)
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q does not contain %q", out, w)
				}
			}
			if strings.Contains(out+errs, "Testchild") {
				t.Fatal("personal data in the output")
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		wantSeq []int64
	}{
		{"CSV", []string{"--format", "csv"}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"JSON", []string{"--format", "json"}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"DefaultIsCSV", nil, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"CSVSince", []string{"--format", "csv", "--since", auditT0.Add(3 * time.Minute).Format(time.RFC3339)}, []int64{6, 7, 8, 9}},
		{"JSONSince", []string{"--format", "json", "--since", "2025-03-01T11:02:00+03:00"}, []int64{5, 6, 7, 8, 9}},
		{"JSONSinceAfterAll", []string{"--format", "json", "--since", "2030-01-01T00:00:00Z"}, nil},
		{"CSVSinceAfterAll", []string{"--format", "csv", "--since", "2030-01-01T00:00:00Z"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, evs := auditSetup(t)
			code, out, errs := runCmd(t, append([]string{"audit", "export", "--config", cfg}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d; stderr %q", code, errs)
			}
			var got []refbridge.AuditEvent
			if strings.Contains(tt.name, "JSON") {
				got = parseJSONExport(t, out)
			} else {
				got = parseCSVExport(t, out)
			}
			var seqs []int64
			for _, ev := range got {
				seqs = append(seqs, ev.Seq)
				want := evs[ev.Seq-1]
				// Every column round-trips: the exported events re-verify.
				if ev.ComputeHash() != ev.Hash || ev.Hash != want.Hash || !slices.Equal(ev.Fields, want.Fields) {
					t.Fatalf("exported event %d = %+v, want %+v with a matching hash", ev.Seq, ev, want)
				}
			}
			if !slices.Equal(seqs, tt.wantSeq) {
				t.Fatalf("exported seqs %v, want %v", seqs, tt.wantSeq)
			}
			head := evs[len(evs)-1]
			if want := fmt.Sprintf("final event %d, final hash %s", head.Seq, head.Hash); !strings.Contains(errs, want) {
				t.Fatalf("stderr %q does not give %q", errs, want)
			}
		})
	}
}

func parseJSONExport(t *testing.T, out string) []refbridge.AuditEvent {
	t.Helper()
	var evs []refbridge.AuditEvent
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("export is not a JSON array: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "[") {
		t.Fatalf("export %q is not an array", out)
	}
	for i := range evs {
		if evs[i].Fields == nil {
			t.Fatalf("event %d: fields null, want a (possibly empty) list", evs[i].Seq)
		}
		if len(evs[i].Fields) == 0 {
			evs[i].Fields = nil
		}
	}
	return evs
}

func parseCSVExport(t *testing.T, out string) []refbridge.AuditEvent {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, out)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "seq,at,kind,exchange_id,flow,key,peer,actor,fields,outcome,reason,override,prev_hash,hash" {
		t.Fatalf("CSV header = %v", recs)
	}
	var evs []refbridge.AuditEvent
	for _, r := range recs[1:] {
		var ev refbridge.AuditEvent
		var err error
		if _, err = fmt.Sscan(r[0], &ev.Seq); err != nil {
			t.Fatal(err)
		}
		if ev.At, err = time.Parse(time.RFC3339Nano, r[1]); err != nil {
			t.Fatal(err)
		}
		ev.Kind, ev.ExchangeID, ev.Flow, ev.Key, ev.Peer, ev.Actor = refbridge.AuditKind(r[2]), r[3], refbridge.Flow(r[4]), r[5], r[6], r[7]
		if r[8] != "" {
			ev.Fields = strings.Split(r[8], " ")
		}
		ev.Outcome, ev.Reason, ev.Override, ev.PrevHash, ev.Hash = r[9], r[10], r[11] == "true", r[12], r[13]
		evs = append(evs, ev)
	}
	return evs
}

// TestAuditExportBrokenChain: the reviewers still get every event, but the
// break is named and the exit status says so.
func TestAuditExportBrokenChain(t *testing.T) {
	t.Parallel()

	cfg, dbPath, _ := auditSetup(t)
	tamperDB(t, dbPath, `UPDATE audit_events SET fields = '["sex"]' WHERE seq = 5`)
	code, out, errs := runCmd(t, "audit", "export", "--config", cfg, "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errs)
	}
	if got := parseJSONExport(t, out); len(got) != 9 {
		t.Fatalf("%d events exported, want all 9", len(got))
	}
	if !strings.Contains(errs, "BROKEN: audit event 5:") {
		t.Fatalf("stderr %q does not name event 5", errs)
	}
}

func TestAuditEmptyChain(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, keyText)
	tests := []struct {
		args    []string
		wantOut string
	}{
		{[]string{"audit", "verify", "--config", cfg}, "audit chain intact: 0 events, last hash " + refbridge.AuditGenesisHash + "\n"},
		{[]string{"audit", "export", "--config", cfg, "--format", "json"}, "[]\n"},
		{[]string{"audit", "export", "--config", cfg, "--format", "csv"}, "seq,at,kind,exchange_id,flow,key,peer,actor,fields,outcome,reason,override,prev_hash,hash\n"},
	}
	for _, tt := range tests {
		// One store: run in turn (each command holds its lock).
		code, out, errs := runCmd(t, tt.args...)
		if code != 0 || out != tt.wantOut {
			t.Fatalf("%v: exit %d, stdout %q (stderr %q); want 0 and %q", tt.args, code, out, errs, tt.wantOut)
		}
	}
}

func TestAuditUsage(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, keyText)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"NoSubcommand", []string{"audit"}, "missing subcommand"},
		{"UnknownSubcommand", []string{"audit", "rewrite"}, `unknown subcommand "rewrite"`},
		{"VerifyNoConfig", []string{"audit", "verify"}, "--config FILE is required"},
		{"ExportBadFormat", []string{"audit", "export", "--config", cfg, "--format", "xml"}, "--format must be csv or json"},
		{"ExportBadSince", []string{"audit", "export", "--config", cfg, "--since", "yesterday"}, "RFC 3339"},
		{"ExtraArgument", []string{"audit", "verify", "--config", cfg, "now"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, errs := runCmd(t, tt.args...)
			if code != exitUsage || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errs, exitUsage, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		// A refused command line never opened (created, migrated) the store.
		if _, err := os.Stat(filepath.Join(dir, "refbridge.db")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("store file after refused command lines: %v", err)
		}
	})
}
