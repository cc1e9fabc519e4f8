package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"refbridge"
)

// argon2id parameters for new hashes: OWASP's minimum for argon2id
// (19 MiB, 2 passes, 1 lane). They are encoded in each hash, so raising
// them later re-hashes nothing and breaks nothing.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password length bounds: long enough to resist guessing, bounded so a
// login request cannot make argon2 hash megabytes.
const (
	minPasswordLen = 10
	maxPasswordLen = 256
)

// accountName is a login handle, not a person's name: it becomes the actor
// of audit events, which hold codes and ids only.
var accountName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// hashPassword returns the PHC-style encoding
// $argon2id$v=19$m=…,t=…,p=…$salt$hash with a fresh random salt.
func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the encoded hash,
// comparing in constant time with the parameters the hash records.
func checkPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("store: password hash is not argon2id")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("store: password hash has an unknown argon2 version")
	}
	var mem, passes uint32
	var lanes uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &passes, &lanes); err != nil || mem == 0 || passes == 0 || lanes == 0 {
		return false, errors.New("store: password hash has bad parameters")
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errors.New("store: password hash has a bad salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errors.New("store: password hash has a bad key")
	}
	got := argon2.IDKey([]byte(password), salt, passes, mem, lanes, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func checkAccountName(name string) error {
	if !accountName.MatchString(name) {
		return refbridge.Errorf(refbridge.EInvalid, "account name must be 1-64 of a-z 0-9 . _ - starting with a letter or digit")
	}
	return nil
}

func checkPasswordRules(password string) error {
	if n := len([]rune(password)); n < minPasswordLen || len(password) > maxPasswordLen {
		return refbridge.Errorf(refbridge.EInvalid, "password must be %d to %d bytes long", minPasswordLen, maxPasswordLen)
	}
	return nil
}

func checkLanguage(lang string) error {
	if !slices.Contains(refbridge.Languages(), lang) {
		return refbridge.Errorf(refbridge.EInvalid, "language %q: use one of %v", lang, refbridge.Languages())
	}
	return nil
}

// AddUser creates a console account: EInvalid for a bad name, role,
// language or password, EConflict when the name is taken.
func (db *DB) AddUser(ctx context.Context, name string, role refbridge.Role, language, password string) error {
	if language == "" {
		language = "en"
	}
	switch {
	case !role.Valid():
		return refbridge.Errorf(refbridge.EInvalid, "role %q: use one of %v", role, refbridge.Roles())
	}
	if err := errors.Join(checkAccountName(name), checkLanguage(language), checkPasswordRules(password)); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q.userExists, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return refbridge.Errorf(refbridge.EConflict, "account %q exists", name)
		}
		now := db.nowMicros()
		_, err := tx.ExecContext(ctx, db.q.userInsert, name, string(role), hash, language, now, now)
		return err
	})
	return errStore("add user", err)
}

// SetPassword replaces an account's password and ends its sessions.
func (db *DB) SetPassword(ctx context.Context, name, password string) error {
	if err := checkPasswordRules(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return db.updateUser(ctx, name, db.q.userSetPassword, true, hash)
}

// SetUserDisabled disables (ending its sessions) or re-enables an account.
func (db *DB) SetUserDisabled(ctx context.Context, name string, disabled bool) error {
	return db.updateUser(ctx, name, db.q.userSetDisabled, disabled, boolInt(disabled))
}

// SetUserLanguage changes the account's interface language.
func (db *DB) SetUserLanguage(ctx context.Context, name, language string) error {
	if err := checkLanguage(language); err != nil {
		return err
	}
	return db.updateUser(ctx, name, db.q.userSetLanguage, false, language)
}

// updateUser runs query (its args, then updated_at, then name) on one
// account, ENotFound when there is none, ending its sessions if asked.
func (db *DB) updateUser(ctx context.Context, name, query string, endSessions bool, arg any) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, arg, db.nowMicros(), name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return refbridge.Errorf(refbridge.ENotFound, "account %q not found", name)
		}
		if endSessions {
			_, err = tx.ExecContext(ctx, db.q.sessionDeleteUser, name)
		}
		return err
	})
	return errStore("update user", err)
}

func scanAccount(s interface{ Scan(...any) error }) (refbridge.Account, error) {
	var a refbridge.Account
	var role string
	var disabled int
	var created, updated int64
	err := s.Scan(&a.Name, &role, &a.PasswordHash, &a.Language, &disabled, &created, &updated)
	a.Role, a.Disabled, a.CreatedAt, a.UpdatedAt = refbridge.Role(role), disabled != 0, fromMicros(created), fromMicros(updated)
	return a, err
}

// User returns one account (ENotFound when there is none).
func (db *DB) User(ctx context.Context, name string) (refbridge.Account, error) {
	a, err := scanAccount(db.sql.QueryRowContext(ctx, db.q.userGet, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, refbridge.Errorf(refbridge.ENotFound, "account %q not found", name)
	}
	return a, errStore("user", err)
}

// Users returns every account by name.
func (db *DB) Users(ctx context.Context) ([]refbridge.Account, error) {
	rows, err := db.sql.QueryContext(ctx, db.q.userList)
	if err != nil {
		return nil, errStore("users", err)
	}
	defer rows.Close()
	var out []refbridge.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, errStore("users", err)
		}
		out = append(out, a)
	}
	return out, errStore("users", rows.Err())
}

// Authenticate checks a name and password. Every failure — unknown name,
// wrong password, disabled account — is the same EUnauthorized, and an
// unknown name still costs one hash, so neither the answer nor its timing
// tells which names exist.
func (db *DB) Authenticate(ctx context.Context, name, password string) (refbridge.Account, error) {
	denied := refbridge.Errorf(refbridge.EUnauthorized, "wrong name or password")
	if len(password) > maxPasswordLen {
		return refbridge.Account{}, denied
	}
	a, err := db.User(ctx, name)
	encoded := a.PasswordHash
	switch {
	case refbridge.ErrorCodeOf(err) == refbridge.ENotFound:
		// A fixed hash of nothing anyone can type (its key is all zeros).
		encoded = dummyHash
	case err != nil:
		return refbridge.Account{}, err
	}
	ok, herr := checkPassword(encoded, password)
	if herr != nil && err == nil {
		return refbridge.Account{}, errStore("authenticate", herr)
	}
	if !ok || err != nil || a.Disabled {
		return refbridge.Account{}, denied
	}
	return a, nil
}

// dummyHash has the current parameters and a key no password derives.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// tokenHash is how a session token is kept: its SHA-256, hex.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateSession starts a session for an enabled account, valid for ttl,
// and returns its token (32 random bytes, URL-safe base64) — the only
// copy, for the cookie. Expired sessions are removed in passing.
func (db *DB) CreateSession(ctx context.Context, name string, ttl time.Duration) (string, refbridge.Session, error) {
	if ttl <= 0 {
		return "", refbridge.Session{}, refbridge.Errorf(refbridge.EInvalid, "session lifetime must be positive")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", refbridge.Session{}, fmt.Errorf("store: session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	var s refbridge.Session
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a, err := scanAccount(tx.QueryRowContext(ctx, db.q.userGet, name))
		if errors.Is(err, sql.ErrNoRows) || (err == nil && a.Disabled) {
			return refbridge.Errorf(refbridge.EUnauthorized, "account %q cannot log in", name)
		}
		if err != nil {
			return err
		}
		now := db.now().UTC()
		if _, err := tx.ExecContext(ctx, db.q.sessionDeleteExpired, now.UnixMicro()); err != nil {
			return err
		}
		s = refbridge.Session{Account: a, CreatedAt: now.Truncate(time.Microsecond), ExpiresAt: now.Add(ttl).Truncate(time.Microsecond)}
		_, err = tx.ExecContext(ctx, db.q.sessionInsert, tokenHash(token), name, s.CreatedAt.UnixMicro(), s.ExpiresAt.UnixMicro())
		return err
	})
	if err != nil {
		return "", refbridge.Session{}, errStore("create session", err)
	}
	return token, s, nil
}

// Session returns the live session a token names: EUnauthorized when it is
// unknown, expired, or its account is disabled. The lookup is by the
// token's hash, so no comparison of secrets happens in Go at all.
func (db *DB) Session(ctx context.Context, token string) (refbridge.Session, error) {
	denied := refbridge.Errorf(refbridge.EUnauthorized, "no such session")
	if token == "" || len(token) > 128 {
		return refbridge.Session{}, denied
	}
	var s refbridge.Session
	var created, expires int64
	row := db.sql.QueryRowContext(ctx, db.q.sessionGet, tokenHash(token))
	var a refbridge.Account
	var role string
	var disabled int
	var ac, au int64
	err := row.Scan(&created, &expires, &a.Name, &role, &a.PasswordHash, &a.Language, &disabled, &ac, &au)
	if errors.Is(err, sql.ErrNoRows) {
		return s, denied
	}
	if err != nil {
		return s, errStore("session", err)
	}
	a.Role, a.Disabled, a.CreatedAt, a.UpdatedAt = refbridge.Role(role), disabled != 0, fromMicros(ac), fromMicros(au)
	s = refbridge.Session{Account: a, CreatedAt: fromMicros(created), ExpiresAt: fromMicros(expires)}
	if a.Disabled || !db.now().Before(s.ExpiresAt) {
		return refbridge.Session{}, denied
	}
	return s, nil
}

// DeleteSession ends a session (logout); an unknown token is not an error.
func (db *DB) DeleteSession(ctx context.Context, token string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q.sessionDelete, tokenHash(token))
		return err
	})
	return errStore("delete session", err)
}
