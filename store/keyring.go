package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// keyIDPattern keeps key ids to codes that are safe in logs, file names and
// the key_id column.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Keyring holds the AES-256-GCM keys that protect payloads at rest. The first
// key encrypts; every key decrypts, so keys can rotate without downtime.
type Keyring struct {
	ids   []string
	aeads map[string]cipher.AEAD
}

// ParseKeyring reads the text form: one key per line, "<id> <base64 of 32
// bytes>", blank lines and '#' comments ignored; the first key is current.
// Errors name the line and never echo key material.
func ParseKeyring(text string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("keyring line %d: want \"<id> <base64 key>\", got %d fields", n, len(fields))
		}
		id, enc := fields[0], fields[1]
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("keyring line %d: key id must be 1-64 letters, digits, '.', '_' or '-'", n)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("keyring line %d: key id %q appears twice", n, id)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("keyring line %d (key %q): key is not valid standard base64", n, id)
		}
		if len(raw) != 32 {
			return nil, fmt.Errorf("keyring line %d (key %q): key is %d bytes, want 32 (AES-256)", n, id, len(raw))
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("keyring line %d (key %q): %w", n, id, err)
		}
		k.ids = append(k.ids, id)
		k.aeads[id] = aead
	}
	if len(k.ids) == 0 {
		return nil, errors.New("keyring holds no key")
	}
	return k, nil
}

// LoadKeyring reads a keyring file. The file must not be accessible to group
// or others: a key anyone on the host can read protects nothing.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring %s: file mode %04o lets group or others access it; run chmod 600 on it", path, perm)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	k, err := ParseKeyring(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// GenerateKeyring makes a keyring with one new random key and returns it with
// its text form (for the demo, tests and `keys` tooling).
func GenerateKeyring() (*Keyring, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, "", err
	}
	id := "k" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(suffix)
	text := "# refbridge payload keys: first line encrypts, all decrypt\n" +
		id + " " + base64.StdEncoding.EncodeToString(raw) + "\n"
	clear(raw)
	k, err := ParseKeyring(text)
	if err != nil {
		return nil, "", err
	}
	return k, text, nil
}

// Current returns the id of the key new payloads are encrypted under.
func (k *Keyring) Current() string { return k.ids[0] }

// IDs returns every key id, current first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain under the current key with a fresh random nonce,
// bound to aad; it returns nonce||ciphertext and the key id.
func (k *Keyring) seal(plain, aad []byte) ([]byte, string) {
	id := k.ids[0]
	aead := k.aeads[id]
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		// crypto/rand never fails on supported platforms (it panics itself
		// since Go 1.24); keep the contract explicit.
		panic("store: crypto/rand failed: " + err.Error())
	}
	return aead.Seal(out, out, plain, aad), id
}

// open decrypts a value sealed by seal under key id with the same aad.
func (k *Keyring) open(id string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("payload key %q is not in the keyring", id)
	}
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, errors.New("payload ciphertext is truncated")
	}
	plain, err := aead.Open(nil, sealed[:ns], sealed[ns:], aad)
	if err != nil {
		return nil, fmt.Errorf("payload does not authenticate under key %q (tampered or moved from another row)", id)
	}
	return plain, nil
}
