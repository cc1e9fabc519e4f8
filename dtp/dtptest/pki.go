package dtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// PKI is a throw-away certificate authority for tests and the standalone
// simulator: a CA, a server certificate for 127.0.0.1/localhost, a client
// certificate signed by the CA, and a second, untrusted CA with a client
// certificate of its own for negative tests. Everything is generated at run
// time (ECDSA P-256) into Dir, so nothing secret is ever committed.
type PKI struct {
	// Dir holds every file below.
	Dir string
	// CAFile is the trusted CA certificate (PEM): the client trusts the
	// server with it and the simulator trusts clients with it.
	CAFile string
	// ServerCertFile and ServerKeyFile are the simulator's certificate and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate ("refbridge")
	// signed by the trusted CA.
	ClientCertFile, ClientKeyFile string
	// UntrustedCAFile is a second CA the simulator does not trust.
	UntrustedCAFile string
	// UntrustedCertFile and UntrustedKeyFile are a client certificate signed
	// by the untrusted CA: well-formed, valid dates, wrong issuer.
	UntrustedCertFile, UntrustedKeyFile string

	trusted, untrusted *authority
	server             tls.Certificate
	pool               *x509.CertPool
}

// authority is a CA able to sign leaf certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// validity bounds every certificate: an hour of slack for clock skew, and
// long enough for a demo left running.
const (
	notBeforeSlack = time.Hour
	lifetime       = 30 * 24 * time.Hour
)

// fileName accepts the names IssueClient turns into file names and CNs.
var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewPKI creates the CAs and certificates in dir (which must exist, e.g.
// t.TempDir()). The server certificate is valid for localhost, 127.0.0.1 and
// ::1, plus any extraHosts (names or IP addresses), so that
// `refbridge sim dtp --addr HOST:PORT` can serve another interface.
func NewPKI(dir string, extraHosts ...string) (*PKI, error) {
	p := &PKI{Dir: dir}
	var err error
	if p.trusted, p.CAFile, err = newAuthority(dir, "ca", "refbridge test CA"); err != nil {
		return nil, err
	}
	if p.untrusted, p.UntrustedCAFile, err = newAuthority(dir, "untrusted-ca", "refbridge untrusted test CA"); err != nil {
		return nil, err
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.trusted.cert)

	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, extraHosts...)
	p.ServerCertFile, p.ServerKeyFile, err = p.trusted.issue(dir, "server", "refbridge DTP simulator", x509.ExtKeyUsageServerAuth, hosts)
	if err != nil {
		return nil, err
	}
	if p.server, err = tls.LoadX509KeyPair(p.ServerCertFile, p.ServerKeyFile); err != nil {
		return nil, fmt.Errorf("dtptest: load server certificate: %w", err)
	}
	if p.ClientCertFile, p.ClientKeyFile, err = p.IssueClient("refbridge"); err != nil {
		return nil, err
	}
	if p.UntrustedCertFile, p.UntrustedKeyFile, err = p.IssueUntrustedClient("refbridge-untrusted"); err != nil {
		return nil, err
	}
	return p, nil
}

// IssueClient signs a new client certificate with the trusted CA. name is the
// certificate's common name, which the simulator records with every message,
// and the base of the file names; it must be unique within the PKI.
func (p *PKI) IssueClient(name string) (certFile, keyFile string, err error) {
	return p.trusted.issue(p.Dir, "client-"+name, name, x509.ExtKeyUsageClientAuth, nil)
}

// IssueUntrustedClient signs a new client certificate with the untrusted CA.
func (p *PKI) IssueUntrustedClient(name string) (certFile, keyFile string, err error) {
	return p.untrusted.issue(p.Dir, "untrusted-client-"+name, name, x509.ExtKeyUsageClientAuth, nil)
}

// ServerTLS returns a server configuration that presents the server
// certificate and requires a client certificate signed by the trusted CA.
// Each call returns a new value the caller may change.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
	}
}

// ClientTLS returns a client configuration trusting the CA and presenting the
// default client certificate; for tests that talk to the simulator without
// the dtp package.
func (p *PKI) ClientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.ClientCertFile, p.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dtptest: load client certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.pool, Certificates: []tls.Certificate{cert}}, nil
}

// verifyClient checks a client certificate chain against the trusted CA, as
// the gateway's certificate policy does.
func (p *PKI) verifyClient(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("no client certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         p.pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

func newAuthority(dir, base, cn string) (*authority, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("dtptest: generate %s key: %w", base, err)
	}
	tmpl, err := template(cn)
	if err != nil {
		return nil, "", err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("dtptest: create %s certificate: %w", base, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", fmt.Errorf("dtptest: parse %s certificate: %w", base, err)
	}
	file := filepath.Join(dir, base+".pem")
	if err := writePEM(file, "CERTIFICATE", der, 0o644); err != nil {
		return nil, "", err
	}
	return &authority{cert: cert, key: key}, file, nil
}

// issue signs a leaf certificate for usage and writes base.pem and
// base-key.pem. hosts become DNS or IP subject alternative names.
func (a *authority) issue(dir, base, cn string, usage x509.ExtKeyUsage, hosts []string) (certFile, keyFile string, err error) {
	if !fileName.MatchString(base) {
		return "", "", fmt.Errorf("dtptest: certificate name %q: use letters, digits, '.', '_' or '-'", cn)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("dtptest: generate %s key: %w", base, err)
	}
	tmpl, err := template(cn)
	if err != nil {
		return "", "", err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return "", "", fmt.Errorf("dtptest: sign %s certificate: %w", base, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("dtptest: encode %s key: %w", base, err)
	}
	certFile = filepath.Join(dir, base+".pem")
	keyFile = filepath.Join(dir, base+"-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func template(cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("dtptest: serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"refbridge tests"}},
		NotBefore:    now.Add(-notBeforeSlack),
		NotAfter:     now.Add(lifetime),
	}, nil
}

// writePEM creates file exclusively: a name issued twice is a test bug, and
// silently replacing a certificate another test is using would hide it.
func writePEM(file, typ string, der []byte, perm os.FileMode) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("dtptest: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("dtptest: write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dtptest: write %s: %w", file, err)
	}
	return nil
}
