package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// secretSet holds the SHA-256 digests of the accepted secrets. Comparing
// fixed-size digests keeps the comparison independent of the secrets'
// lengths, and match checks every entry, so timing reveals neither whether
// nor which secret matched.
type secretSet struct {
	digests [][sha256.Size]byte
}

func newSecretSet(secrets []string) *secretSet {
	s := &secretSet{}
	for _, v := range secrets {
		if v = strings.TrimSpace(v); v != "" {
			s.digests = append(s.digests, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

func (s *secretSet) empty() bool { return len(s.digests) == 0 }

// match reports whether presented is one of the secrets, in time that
// depends only on the number of secrets.
func (s *secretSet) match(presented string) bool {
	d := sha256.Sum256([]byte(presented))
	found := 0
	for i := range s.digests {
		found |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	return found == 1 && presented != ""
}
