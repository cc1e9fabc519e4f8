package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"refbridge"
	"refbridge/store"
)

// writeConfig writes a serve configuration whose store lives in dir and
// whose secrets are files in dir; keys is the keyring text.
func writeConfig(t *testing.T, dir, keys string) string {
	t.Helper()
	files := map[string]string{"keys": keys, "tokens": "token-1\n", "primero-password": "pw\n", "subscription-key": "sub\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := `store:
  path: ` + filepath.Join(dir, "refbridge.db") + `
  keys_file: ` + filepath.Join(dir, "keys") + `
inbound:
  tokens_file: ` + filepath.Join(dir, "tokens") + `
primero:
  base_url: https://primero.example.org
  user: refbridge_api
  password_file: ` + filepath.Join(dir, "primero-password") + `
dtp:
  referral_url: https://dtp.example.org/ReceiveIncomingReferral
  decision_url: https://dtp.example.org/ReceiveDecisionOutgoingReferral
  subscription_key_file: ` + filepath.Join(dir, "subscription-key") + `
  cert_file: ` + filepath.Join(dir, "client.pem") + `
  key_file: ` + filepath.Join(dir, "client-key.pem") + `
log:
  format: text
`
	p := filepath.Join(dir, "refbridge.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs strings.Builder
	code := run(context.Background(), args, strings.NewReader(""), &out, &errs)
	return code, out.String(), errs.String()
}

func TestMigrateAndKeysRotate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldKeys, oldText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, oldText)
	if code, out, errs := runCmd(t, "migrate", "--config", cfg); code != 0 || !strings.Contains(out, "schema current") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errs)
	}

	// One exchange with a payload under the old key.
	db, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "refbridge.db"), Keys: oldKeys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Receive(context.Background(), []refbridge.Inbound{{Flow: refbridge.FlowIntervention, Key: "TST-1", ContentHash: "h", Payload: []byte(`[{}]`)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A new key first, the old one still listed: rotate moves the payload.
	_, newText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, newText+"\n"+oldText)
	if code, out, errs := runCmd(t, "keys", "rotate", "--config", cfg); code != 0 || !strings.Contains(out, "re-encrypted 1 payloads") {
		t.Fatalf("keys rotate: exit %d, %q %q", code, out, errs)
	}
	// Now the old key can go.
	writeConfig(t, dir, newText)
	if code, out, errs := runCmd(t, "keys", "rotate", "--config", cfg); code != 0 || !strings.Contains(out, "re-encrypted 0 payloads") {
		t.Fatalf("keys rotate after removing the old key: exit %d, %q %q", code, out, errs)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "refbridge.yaml")
	if err := os.WriteFile(p, []byte("primero:\n  auth: magic\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCmd(t, "serve", "--config", p)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"primero.auth", "primero.base_url", "store.keys_file"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr does not name %s:\n%s", want, errs)
		}
	}
	if code, _, _ := runCmd(t, "serve"); code != exitUsage {
		t.Fatalf("serve without --config: exit %d, want %d", code, exitUsage)
	}
}
