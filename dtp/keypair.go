package dtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"refbridge"
)

// keyPair holds the client certificate and key read from two PEM files. TLS
// asks it for the certificate on every handshake (GetClientCertificate), so
// a Reload takes effect on the next connection without rebuilding the TLS
// configuration or the HTTP client, and a request in flight never sees a
// half-swapped pair.
type keyPair struct {
	certFile, keyFile string

	reload sync.Mutex // one Reload at a time, so the last one read wins
	cur    atomic.Pointer[tls.Certificate]
}

// loadKeyPair reads the pair once; problems name the files, never their content.
func loadKeyPair(certFile, keyFile string) (*keyPair, []refbridge.Problem) {
	k := &keyPair{certFile: certFile, keyFile: keyFile}
	cert, problems := k.read()
	if cert != nil {
		k.cur.Store(cert)
	}
	return k, problems
}

// Reload reads both files again and swaps the pair in. When the files do not
// hold a usable pair (e.g. a rotation half written) it returns an EInvalid
// error and keeps the pair in use, so a bad rotation never takes the client
// down.
func (k *keyPair) Reload() error {
	k.reload.Lock()
	defer k.reload.Unlock()
	cert, problems := k.read()
	if len(problems) > 0 {
		return configError("cannot reload the DTP client certificate", problems)
	}
	k.cur.Store(cert)
	return nil
}

// GetClientCertificate implements tls.Config.GetClientCertificate. It
// always offers the pair, whatever CAs the server lists: APIM may list none,
// and a refused certificate must fail loudly rather than be left out.
func (k *keyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.cur.Load(), nil
}

// read parses the files into a certificate whose leaf is not expired.
func (k *keyPair) read() (*tls.Certificate, []refbridge.Problem) {
	var problems []refbridge.Problem
	certPEM, p := readFile("cert_file", "client certificate", k.certFile)
	problems = append(problems, p...)
	keyPEM, p := readFile("key_file", "client private key", k.keyFile)
	problems = append(problems, p...)
	if len(problems) > 0 {
		return nil, problems
	}
	// crypto/tls's errors describe the structure (no PEM block, key does
	// not match), never the bytes, so they are safe to pass on.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, []refbridge.Problem{{Field: "cert_file", Rule: "invalid",
			Detail: fmt.Sprintf("%q and %q are not a matching PEM certificate and private key: %v", k.certFile, k.keyFile, err)}}
	}
	// A certificate past its date would only show up as a TLS alert on the
	// first call; say so at start-up and on reload instead.
	if cert.Leaf != nil && time.Now().After(cert.Leaf.NotAfter) {
		return nil, []refbridge.Problem{{Field: "cert_file", Rule: "expired",
			Detail: fmt.Sprintf("the certificate in %q expired at %s", k.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))}}
	}
	return &cert, nil
}

// readFile reads a configured file; what describes it for the operator.
func readFile(field, what, path string) ([]byte, []refbridge.Problem) {
	if path == "" {
		return nil, []refbridge.Problem{{Field: field, Rule: "required", Detail: "the " + what + " file is required"}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError repeats the path; keep only its cause.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, []refbridge.Problem{{Field: field, Rule: "unreadable", Detail: fmt.Sprintf("cannot read the %s file %q: %v", what, path, err)}}
	}
	return data, nil
}
