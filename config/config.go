// Package config reads refbridge's production configuration: a YAML file
// for settings, REFBRIDGE_* environment variables that override them, and
// secrets only from files or the environment — never from the YAML itself,
// so the file can be reviewed and versioned without exposing anything.
package config

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"refbridge"
)

// Config is every setting of `refbridge serve`.
type Config struct {
	// Profile names an embedded country profile or a profile file.
	Profile string `yaml:"profile"`
	// Listen is the address of the inbound API, Primero webhook and console.
	Listen string `yaml:"listen"`
	Log    struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // json or text
	} `yaml:"log"`
	Store struct {
		Path      string   `yaml:"path"`
		KeysFile  string   `yaml:"keys_file"`
		Retention Duration `yaml:"retention"`
	} `yaml:"store"`
	Inbound struct {
		TokensFile      string `yaml:"tokens_file"`
		WebhookKeysFile string `yaml:"webhook_keys_file"`
		MaxBodyBytes    int64  `yaml:"max_body_bytes"`
	} `yaml:"inbound"`
	Primero struct {
		BaseURL      string   `yaml:"base_url"`
		User         string   `yaml:"user"`
		PasswordFile string   `yaml:"password_file"`
		Auth         string   `yaml:"auth"` // basic or token
		Timeout      Duration `yaml:"timeout"`
	} `yaml:"primero"`
	DTP struct {
		ReferralURL         string   `yaml:"referral_url"`
		DecisionURL         string   `yaml:"decision_url"`
		SubscriptionKeyFile string   `yaml:"subscription_key_file"`
		CertFile            string   `yaml:"cert_file"`
		KeyFile             string   `yaml:"key_file"`
		CAFile              string   `yaml:"ca_file"`
		Timeout             Duration `yaml:"timeout"`
	} `yaml:"dtp"`
	Engine struct {
		PollInterval Duration `yaml:"poll_interval"`
		PollOverlap  Duration `yaml:"poll_overlap"`
		MaxAttempts  int      `yaml:"max_attempts"`
		Workers      int      `yaml:"workers"`
		JobTimeout   Duration `yaml:"job_timeout"`
	} `yaml:"engine"`

	// Secrets, read from files or the environment by Load.
	Secrets Secrets `yaml:"-"`
}

// Secrets are the credentials refbridge holds. They never appear in logs or
// errors.
type Secrets struct {
	EncryptionKeys  string   // keyring text (store.ParseKeyring)
	InboundTokens   []string // bearer tokens DTP may present
	WebhookKeys     []string // keys Primero's webhook may present
	PrimeroPassword string
	SubscriptionKey string
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 5m, got %q", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults returns a configuration with every optional setting filled.
func Defaults() Config {
	var c Config
	c.Profile = "gambella"
	c.Listen = "127.0.0.1:8080"
	c.Log.Level, c.Log.Format = "info", "json"
	c.Store.Path = "refbridge.db"
	c.Inbound.MaxBodyBytes = 4 << 20
	c.Primero.Auth = "basic"
	c.Primero.Timeout = Duration(30 * time.Second)
	c.DTP.Timeout = Duration(30 * time.Second)
	c.Engine.PollInterval = Duration(time.Minute)
	c.Engine.PollOverlap = Duration(10 * time.Minute)
	c.Engine.MaxAttempts = 10
	c.Engine.Workers = 8
	c.Engine.JobTimeout = Duration(time.Minute)
	return c
}

// Load reads the YAML file at path over the defaults, applies REFBRIDGE_*
// overrides from env, reads the secrets, and validates. The error lists
// every problem, each naming its setting.
func Load(path string, env func(string) string) (Config, error) {
	c := Defaults()
	src, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(src), yaml.DisallowUnknownField()).Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
	}
	var problems []refbridge.Problem
	c.applyEnv(env, &problems)
	c.readSecrets(env, &problems)
	c.validate(&problems)
	if len(problems) > 0 {
		return c, &refbridge.Error{Code: refbridge.EInvalid, Message: "config " + path + " has problems", Problems: problems}
	}
	return c, nil
}

// overrides maps each REFBRIDGE_* variable to the setting it replaces.
func (c *Config) overrides() map[string]any {
	return map[string]any{
		"REFBRIDGE_PROFILE":                   &c.Profile,
		"REFBRIDGE_LISTEN":                    &c.Listen,
		"REFBRIDGE_LOG_LEVEL":                 &c.Log.Level,
		"REFBRIDGE_LOG_FORMAT":                &c.Log.Format,
		"REFBRIDGE_STORE_PATH":                &c.Store.Path,
		"REFBRIDGE_STORE_KEYS_FILE":           &c.Store.KeysFile,
		"REFBRIDGE_STORE_RETENTION":           &c.Store.Retention,
		"REFBRIDGE_INBOUND_TOKENS_FILE":       &c.Inbound.TokensFile,
		"REFBRIDGE_INBOUND_WEBHOOK_KEYS_FILE": &c.Inbound.WebhookKeysFile,
		"REFBRIDGE_INBOUND_MAX_BODY_BYTES":    &c.Inbound.MaxBodyBytes,
		"REFBRIDGE_PRIMERO_BASE_URL":          &c.Primero.BaseURL,
		"REFBRIDGE_PRIMERO_USER":              &c.Primero.User,
		"REFBRIDGE_PRIMERO_PASSWORD_FILE":     &c.Primero.PasswordFile,
		"REFBRIDGE_PRIMERO_AUTH":              &c.Primero.Auth,
		"REFBRIDGE_PRIMERO_TIMEOUT":           &c.Primero.Timeout,
		"REFBRIDGE_DTP_REFERRAL_URL":          &c.DTP.ReferralURL,
		"REFBRIDGE_DTP_DECISION_URL":          &c.DTP.DecisionURL,
		"REFBRIDGE_DTP_SUBSCRIPTION_KEY_FILE": &c.DTP.SubscriptionKeyFile,
		"REFBRIDGE_DTP_CERT_FILE":             &c.DTP.CertFile,
		"REFBRIDGE_DTP_KEY_FILE":              &c.DTP.KeyFile,
		"REFBRIDGE_DTP_CA_FILE":               &c.DTP.CAFile,
		"REFBRIDGE_DTP_TIMEOUT":               &c.DTP.Timeout,
		"REFBRIDGE_ENGINE_POLL_INTERVAL":      &c.Engine.PollInterval,
		"REFBRIDGE_ENGINE_POLL_OVERLAP":       &c.Engine.PollOverlap,
		"REFBRIDGE_ENGINE_MAX_ATTEMPTS":       &c.Engine.MaxAttempts,
		"REFBRIDGE_ENGINE_WORKERS":            &c.Engine.Workers,
		"REFBRIDGE_ENGINE_JOB_TIMEOUT":        &c.Engine.JobTimeout,
	}
}

func (c *Config) applyEnv(env func(string) string, problems *[]refbridge.Problem) {
	for name, dst := range c.overrides() {
		v := env(name)
		if v == "" {
			continue
		}
		bad := func() {
			*problems = append(*problems, refbridge.Problem{Field: name, Rule: "invalid", Detail: "cannot be read as this setting's type"})
		}
		switch d := dst.(type) {
		case *string:
			*d = v
		case *int:
			n, err := strconv.Atoi(v)
			if err != nil {
				bad()
				continue
			}
			*d = n
		case *int64:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				bad()
				continue
			}
			*d = n
		case *Duration:
			t, err := time.ParseDuration(v)
			if err != nil {
				bad()
				continue
			}
			*d = Duration(t)
		}
	}
}

// readSecrets takes each secret from its environment variable or, failing
// that, from the file the configuration names.
func (c *Config) readSecrets(env func(string) string, problems *[]refbridge.Problem) {
	read := func(setting, file, envName string, required bool) string {
		if v := env(envName); v != "" {
			return v
		}
		if file == "" {
			if required {
				*problems = append(*problems, refbridge.Problem{Field: setting, Rule: "required",
					Detail: "name a file holding this secret, or set " + envName})
			}
			return ""
		}
		b, err := os.ReadFile(file)
		if err != nil {
			*problems = append(*problems, refbridge.Problem{Field: setting, Rule: "unreadable", Detail: err.Error()})
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	c.Secrets.EncryptionKeys = read("store.keys_file", c.Store.KeysFile, "REFBRIDGE_ENCRYPTION_KEYS", true)
	c.Secrets.InboundTokens = lines(read("inbound.tokens_file", c.Inbound.TokensFile, "REFBRIDGE_INBOUND_TOKENS", true))
	c.Secrets.WebhookKeys = lines(read("inbound.webhook_keys_file", c.Inbound.WebhookKeysFile, "REFBRIDGE_WEBHOOK_KEYS", false))
	c.Secrets.PrimeroPassword = read("primero.password_file", c.Primero.PasswordFile, "REFBRIDGE_PRIMERO_PASSWORD", true)
	c.Secrets.SubscriptionKey = read("dtp.subscription_key_file", c.DTP.SubscriptionKeyFile, "REFBRIDGE_DTP_SUBSCRIPTION_KEY", true)
}

// lines splits a secrets file into its non-empty, non-comment lines: one
// token per line, so a new one can be added before the old is removed.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func (c *Config) validate(problems *[]refbridge.Problem) {
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			*problems = append(*problems, refbridge.Problem{Field: field, Rule: "required", Detail: "must be set"})
		}
	}
	need("listen", c.Listen)
	need("store.path", c.Store.Path)
	need("primero.base_url", c.Primero.BaseURL)
	need("primero.user", c.Primero.User)
	need("dtp.referral_url", c.DTP.ReferralURL)
	need("dtp.decision_url", c.DTP.DecisionURL)
	need("dtp.cert_file", c.DTP.CertFile)
	need("dtp.key_file", c.DTP.KeyFile)
	oneOf := func(field, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		*problems = append(*problems, refbridge.Problem{Field: field, Rule: "unknown_code", Detail: "must be one of " + strings.Join(allowed, ", ")})
	}
	oneOf("primero.auth", c.Primero.Auth, "basic", "token")
	oneOf("log.format", c.Log.Format, "json", "text")
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	if c.Store.Retention < 0 {
		*problems = append(*problems, refbridge.Problem{Field: "store.retention", Rule: "invalid", Detail: "must not be negative"})
	}
	if c.Engine.MaxAttempts < 1 || c.Engine.Workers < 1 {
		*problems = append(*problems, refbridge.Problem{Field: "engine", Rule: "invalid", Detail: "max_attempts and workers must be at least 1"})
	}
	if c.Engine.JobTimeout < Duration(time.Second) {
		*problems = append(*problems, refbridge.Problem{Field: "engine.job_timeout", Rule: "invalid", Detail: "must be at least 1s"})
	}
}
