package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"refbridge"
	"refbridge/profile"
	"refbridge/store"
)

// TestProfileChangeIsAudited: the first start with a profile and every
// start with a different profile add a config_changed event; a restart
// with the same profile adds none.
func TestProfileChangeIsAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	gambella, err := profile.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	edited, err := profile.Parse([]byte(strings.Replace(string(src), "      - name_nickname\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if gambella.Digest() == edited.Digest() || len(gambella.Digest()) != 64 {
		t.Fatalf("digests %q and %q: want two different SHA-256s", gambella.Digest(), edited.Digest())
	}
	for _, p := range []*profile.Profile{gambella, gambella, edited, edited, gambella} {
		if err := recordProfile(ctx, db, p); err != nil {
			t.Fatal(err)
		}
	}
	evs, _, err := db.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Kind == refbridge.AuditConfigChanged {
			got = append(got, ev.Reason+" "+ev.Outcome)
		}
	}
	want := []string{"profile_first_use sha256:" + gambella.Digest(), "profile_changed sha256:" + edited.Digest(), "profile_changed sha256:" + gambella.Digest()}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("config_changed events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
