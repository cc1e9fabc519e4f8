package store_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"refbridge/store"
)

func TestParseKeyring(t *testing.T) {
	t.Parallel()

	key := func(b byte, n int) string {
		return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), n)))
	}
	k1, k2, short := key('a', 32), key('b', 32), key('c', 16)
	tests := []struct {
		name        string
		text        string
		wantCurrent string
		wantErr     string
	}{
		{"One", "k1 " + k1, "k1", ""},
		{"FirstIsCurrent", "# keys\n\nk2 " + k2 + "\nk1 " + k1 + "\n", "k2", ""},
		{"CRLFAndIndent", "  k1 " + k1 + "\r\n", "k1", ""},
		{"Empty", "# nothing\n\n", "", "no key"},
		{"OneField", "k1\n", "", "line 1"},
		{"ThreeFields", "# c\nk1 " + k1 + " extra\n", "", "line 2"},
		{"BadID", "k/1 " + k1, "", "key id"},
		{"NotBase64", "k1 !!!notbase64!!!", "", "base64"},
		{"WrongLength", "k1 " + short, "", "16 bytes, want 32"},
		{"DuplicateID", "k1 " + k1 + "\nk1 " + k2, "", "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := store.ParseKeyring(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				for _, secret := range []string{k1, k2, short, "notbase64"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error echoes key material: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Current() != tt.wantCurrent {
				t.Fatalf("Current = %s, want %s", k.Current(), tt.wantCurrent)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Parallel()

	_, text, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    os.FileMode
		wantErr string
	}{
		{"OwnerOnly", 0o600, ""},
		{"OwnerReadOnly", 0o400, ""},
		{"GroupReadable", 0o640, "chmod 600"},
		{"WorldReadable", 0o644, "chmod 600"},
		{"GroupWritable", 0o620, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := store.LoadKeyring(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || k.Current() == "" {
				t.Fatalf("LoadKeyring = %v, %v", k, err)
			}
		})
	}
	if _, err := store.LoadKeyring(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestGenerateKeyringIsFresh(t *testing.T) {
	t.Parallel()

	a, at, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	b, bt, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if a.Current() == b.Current() || at == bt {
		t.Fatal("two generated keyrings are equal")
	}
	if back, err := store.ParseKeyring(at); err != nil || back.Current() != a.Current() {
		t.Fatalf("text form does not parse back: %v", err)
	}
}
