package crashtest

import (
	"bytes"
	"context"
	"os"
	"testing"

	"refbridge"
)

// captureCiphertexts reads, while the bridge is down, the sealed payload of
// every exchange that has one (a prefix long enough to be unique), and
// checks the file scan can see it: otherwise the later absence proves
// nothing.
func captureCiphertexts(t *testing.T, w *world) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	db := w.openStore(ctx)
	defer db.Close()
	rows, err := db.SQL().QueryContext(ctx, `SELECT id, payload FROM exchange WHERE payload IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		if len(b) >= 32 {
			out[id] = bytes.Clone(b[:32])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) > 0 {
		if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		files := storeBytes(t, w.dbPath)
		for id, c := range out {
			if !bytes.Contains(files, c) {
				t.Fatalf("sanity: the live ciphertext of exchange %s is not found in the files; the scan would prove nothing", id)
			}
			break
		}
	}
	return out
}

// storeBytes is the SQLite database with its WAL and shared-memory files.
func storeBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// personalStrings are the synthetic names, birth dates, phone numbers,
// addresses and notes the traffic sent, as they would appear in clear.
func (tr *traffic) personalStrings() []string {
	out := []string{givenPrefix, familyName, caseGiven, caseFamily, addressText, phonePrefix, reasonText}
	dobs := map[string]bool{}
	for _, p := range tr.ivs {
		dobs[p.dob] = true
	}
	for _, r := range tr.referrals() {
		dobs[r.dob] = true
	}
	for d := range dobs {
		out = append(out, d)
	}
	return out
}

// checkNoPersonalData scans the store's files (database, WAL, shared
// memory) once the run is over, first as the bridge left them, then after
// a checkpoint, for the personal strings the traffic sent, and for the
// ciphertexts of payloads whose exchanges have ended (purge on completion
// must overwrite them, not leave them in free pages). The bridge's logs
// must not carry them either.
func checkNoPersonalData(ctx context.Context, t *testing.T, w *world, tr *traffic, ex map[refbridge.Flow]map[string]refbridge.Exchange,
	ciphertexts map[string][]byte) {
	t.Helper()
	personal := tr.personalStrings()
	scan := func(what string, data []byte) {
		t.Helper()
		for _, s := range personal {
			if i := bytes.Index(data, []byte(s)); i >= 0 {
				t.Errorf("%s holds personal data %q (at byte %d)", what, s, i)
			}
		}
	}
	scan("the SQLite files", storeBytes(t, w.dbPath))
	logs, err := os.ReadFile(w.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatal("sanity: the bridge wrote no log at all")
	}
	scan("the bridge's log", logs)

	db := w.openStore(ctx)
	if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	files := storeBytes(t, w.dbPath)
	scan("the SQLite files after a checkpoint", files)

	ended := map[string]bool{}
	for _, byKey := range ex {
		for _, e := range byKey {
			if e.State.Terminal() {
				ended[e.ID] = true
			}
		}
	}
	checked := 0
	for id, c := range ciphertexts {
		if !ended[id] {
			continue // still holds a payload legitimately (awaiting a decision)
		}
		checked++
		if bytes.Contains(files, c) {
			t.Errorf("the ciphertext of ended exchange %s is still in the SQLite files", id)
		}
	}
	if len(ciphertexts) > 0 && checked == 0 {
		t.Errorf("sanity: none of the %d payloads captured mid-run belongs to an ended exchange", len(ciphertexts))
	}
	t.Logf("scanned %d personal strings; %d captured ciphertexts of ended exchanges are gone", len(personal), checked)
}
