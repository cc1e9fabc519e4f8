package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"refbridge"
	"refbridge/config"
	"refbridge/dtp"
	"refbridge/primero"
	"refbridge/profile"
	"refbridge/store"
)

// cmdServe runs the bridge in production from a configuration file.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "", "configuration file (YAML); REFBRIDGE_* variables override it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	ac, err := appConfigFrom(cfg, log)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, ac)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.db.Close()
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	log.Info("refbridge serving", "addr", ln.Addr().String(), "profile", ac.Profile.SiteID(), "store", redactedStore(cfg.Store.Path))
	stopReload := a.reloadOnHangup(ctx, *path)
	defer stopReload()
	return a.run(ctx, ln)
}

// reloadOnHangup re-reads the configuration's secrets on every SIGHUP and
// swaps them in without a restart (see reloadSecrets). It returns the
// function that stops listening.
func (a *app) reloadOnHangup(ctx context.Context, path string) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				cfg, err := config.Load(path, os.Getenv)
				if err == nil {
					err = a.reloadSecrets(cfg)
				}
				if err != nil {
					a.log.Error("secrets not reloaded; the ones in use stay", "code", string(refbridge.ErrorCodeOf(err)), "error", err.Error())
					continue
				}
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// reloadSecrets swaps in the secrets of cfg: DTP's inbound tokens and
// Primero's webhook keys (both sets valid at once while a rotation is under
// way), the Primero API credentials, the DTP subscription key, and the DTP
// client certificate and key (re-read from their files). The encryption
// keyring changes with a restart (then `refbridge keys rotate`).
func (a *app) reloadSecrets(cfg config.Config) error {
	if err := a.dtp.Reload(); err != nil {
		return fmt.Errorf("dtp client certificate: %w", err)
	}
	if err := a.dtp.SetSubscriptionKey(cfg.Secrets.SubscriptionKey); err != nil {
		return err
	}
	if err := a.primero.SetCredentials(cfg.Primero.User, cfg.Secrets.PrimeroPassword); err != nil {
		return err
	}
	a.server.SetTokens(cfg.Secrets.InboundTokens)
	a.server.SetWebhookKeys(cfg.Secrets.WebhookKeys)
	a.log.Info("secrets reloaded", "inbound_tokens", len(cfg.Secrets.InboundTokens), "webhook_keys", len(cfg.Secrets.WebhookKeys))
	return nil
}

// cmdMigrate brings the store's schema up to date (serve does it at start
// too) and says what it did.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	db, _, err := openConfiguredStore(ctx, "migrate", args, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "store %s: schema current (%d migrations applied now)\n", redactedStore(db.Path()), n)
	return nil
}

// cmdKeys handles `keys rotate`: re-encrypt every payload under the current
// (first) key of the keyring, after which older keys can be removed.
func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usageError{"keys needs a subcommand: rotate"}
	}
	db, keys, err := openConfiguredStore(ctx, "keys rotate", args[1:], stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.RotateKeys(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted %d payloads under key %q; keys no longer listed first can now be removed\n", n, keys.Current())
	return nil
}

func openConfiguredStore(ctx context.Context, name string, args []string, stderr io.Writer) (*store.DB, *store.Keyring, error) {
	fs, path := storeFlagSet(name, stderr)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	return openStoreFromConfig(ctx, *path, stderr)
}

// storeFlagSet is the flag set of a command that works on the configured
// store: --config, to which the command may add its own flags.
func storeFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := newFlagSet(name, stderr)
	return fs, fs.String("config", "", "configuration file (YAML)")
}

// openStoreFromConfig opens the store the configuration file at path names.
func openStoreFromConfig(ctx context.Context, path string, stderr io.Writer) (*store.DB, *store.Keyring, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := store.ParseKeyring(cfg.Secrets.EncryptionKeys)
	if err != nil {
		return nil, nil, fmt.Errorf("encryption keys: %w", err)
	}
	db, err := store.Open(ctx, store.Config{Path: cfg.Store.Path, Keys: keys, Retention: time.Duration(cfg.Store.Retention),
		Logger: newLogger(stderr, cfg.Log.Format, cfg.Log.Level)})
	return db, keys, err
}

func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Config{}, usageError{"--config FILE is required"}
	}
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return cfg, explainProblems(err)
	}
	return cfg, nil
}

func appConfigFrom(cfg config.Config, log *slog.Logger) (appConfig, error) {
	p, err := profile.Load(cfg.Profile)
	if err != nil {
		return appConfig{}, fmt.Errorf("profile %s: %w", cfg.Profile, err)
	}
	keys, err := store.ParseKeyring(cfg.Secrets.EncryptionKeys)
	if err != nil {
		return appConfig{}, fmt.Errorf("encryption keys: %w", err)
	}
	auth := primero.AuthBasic
	if cfg.Primero.Auth == "token" {
		auth = primero.AuthToken
	}
	return appConfig{
		Profile: p, StorePath: cfg.Store.Path, Keys: keys, Retention: time.Duration(cfg.Store.Retention),
		Primero: primero.Config{BaseURL: cfg.Primero.BaseURL, UserName: cfg.Primero.User, Password: cfg.Secrets.PrimeroPassword,
			Auth: auth, Timeout: time.Duration(cfg.Primero.Timeout)},
		DTP: dtp.Config{ReferralURL: cfg.DTP.ReferralURL, DecisionURL: cfg.DTP.DecisionURL, SubscriptionKey: cfg.Secrets.SubscriptionKey,
			CertFile: cfg.DTP.CertFile, KeyFile: cfg.DTP.KeyFile, CAFile: cfg.DTP.CAFile, Timeout: time.Duration(cfg.DTP.Timeout)},
		InboundTokens: cfg.Secrets.InboundTokens, WebhookKeys: cfg.Secrets.WebhookKeys, MaxBodyBytes: cfg.Inbound.MaxBodyBytes,
		PollInterval: time.Duration(cfg.Engine.PollInterval), PollOverlap: time.Duration(cfg.Engine.PollOverlap),
		MaxAttempts: cfg.Engine.MaxAttempts, Workers: cfg.Engine.Workers, JobTimeout: time.Duration(cfg.Engine.JobTimeout), Logger: log,
	}, nil
}

// newLogger logs to w as JSON (serve) or text (demo); only IDs and codes
// are ever passed to it.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
