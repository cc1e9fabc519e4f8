package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/config"
)

// writeFile writes content to name in dir with owner-only permissions.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func validYAML(dir string) string {
	return `profile: gambella
listen: 127.0.0.1:9090
store:
  path: ` + filepath.Join(dir, "rb.db") + `
  keys_file: ` + filepath.Join(dir, "keys") + `
  retention: 0s
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
  cert_file: /etc/refbridge/client.pem
  key_file: /etc/refbridge/client-key.pem
engine:
  poll_interval: 30s
`
}

func secrets(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, dir, "keys", "k1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	writeFile(t, dir, "tokens", "# rotate by adding the new token first\ntoken-new\ntoken-old\n")
	writeFile(t, dir, "primero-password", "pw\n")
	writeFile(t, dir, "subscription-key", "sub\n")
}

func noEnv(string) string { return "" }

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets(t, dir)
	path := writeFile(t, dir, "refbridge.yaml", validYAML(dir))
	cfg, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9090" || time.Duration(cfg.Engine.PollInterval) != 30*time.Second || cfg.Engine.MaxAttempts != 10 {
		t.Fatalf("settings or defaults wrong: %+v", cfg)
	}
	if got := cfg.Secrets.InboundTokens; len(got) != 2 || got[0] != "token-new" {
		t.Fatalf("tokens = %q, want both, comments skipped", got)
	}
	if cfg.Secrets.PrimeroPassword != "pw" || cfg.Secrets.SubscriptionKey != "sub" {
		t.Fatal("secrets not read from their files")
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets(t, dir)
	path := writeFile(t, dir, "refbridge.yaml", validYAML(dir))
	env := map[string]string{
		"REFBRIDGE_LISTEN": "0.0.0.0:8443", "REFBRIDGE_ENGINE_MAX_ATTEMPTS": "3",
		"REFBRIDGE_ENGINE_POLL_OVERLAP": "2m", "REFBRIDGE_PRIMERO_PASSWORD": "from-env",
	}
	cfg, err := config.Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:8443" || cfg.Engine.MaxAttempts != 3 || time.Duration(cfg.Engine.PollOverlap) != 2*time.Minute || cfg.Secrets.PrimeroPassword != "from-env" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
}

func TestProblemsListedTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "refbridge.yaml", "primero:\n  auth: magic\nengine:\n  workers: 0\n")
	_, err := config.Load(path, func(k string) string {
		if k == "REFBRIDGE_ENGINE_MAX_ATTEMPTS" {
			return "many"
		}
		return ""
	})
	if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
		t.Fatalf("err = %v, want invalid", err)
	}
	fields := map[string]bool{}
	for _, p := range refbridge.ErrorProblems(err) {
		fields[p.Field] = true
	}
	for _, want := range []string{"primero.base_url", "primero.auth", "dtp.referral_url", "store.keys_file", "inbound.tokens_file",
		"primero.password_file", "dtp.subscription_key_file", "engine", "REFBRIDGE_ENGINE_MAX_ATTEMPTS"} {
		if !fields[want] {
			t.Errorf("no problem reported for %s (got %v)", want, fields)
		}
	}
}

func TestUnknownSettingRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "refbridge.yaml", "primero:\n  pasword: oops\n")
	_, err := config.Load(path, noEnv)
	if err == nil || !strings.Contains(err.Error(), "pasword") {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets(t, dir)
	path := writeFile(t, dir, "refbridge.yaml", strings.Replace(validYAML(dir), "auth: basic", "", 1)+"log:\n  level: loud\n")
	_, err := config.Load(path, noEnv)
	if err == nil {
		t.Fatal("invalid log level accepted")
	}
	for _, s := range []string{"token-new", "pw", "sub", "AAAA"} {
		for _, p := range refbridge.ErrorProblems(err) {
			if strings.Contains(p.Detail, s) {
				t.Fatalf("problem %+v quotes a secret", p)
			}
		}
	}
}

// TestExampleConfigLoads keeps deploy/refbridge.example.yaml in step with
// the code: every setting it shows must exist and be valid.
func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REFBRIDGE_ENCRYPTION_KEYS": "k1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "REFBRIDGE_INBOUND_TOKENS": "t",
		"REFBRIDGE_WEBHOOK_KEYS": "w", "REFBRIDGE_PRIMERO_PASSWORD": "p", "REFBRIDGE_DTP_SUBSCRIPTION_KEY": "s",
	}
	cfg, err := config.Load(filepath.Join("..", "deploy", "refbridge.example.yaml"), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if def := config.Defaults(); cfg.Engine != def.Engine || cfg.Inbound.MaxBodyBytes != def.Inbound.MaxBodyBytes || cfg.Primero.Timeout != def.Primero.Timeout {
		t.Fatalf("the example's values differ from the defaults it claims: %+v", cfg)
	}
}
