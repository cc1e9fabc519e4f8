package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startCommand runs a long-lived command line in the background and returns
// the first line of its output matching re (its listen address), and a stop
// function that cancels it and returns its exit code.
func startCommand(t *testing.T, re *regexp.Regexp, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	stop := func() int { cancel(); return <-code }
	t.Cleanup(func() { cancel() })
	select {
	case addr, ok := <-found:
		if !ok {
			t.Fatalf("%v exited before printing its address (code %d)", args, <-code)
		}
		return addr, stop
	case <-time.After(30 * time.Second):
		t.Fatalf("%v printed no address", args)
	}
	return "", stop
}

func TestSimPrimeroServesAndStops(t *testing.T) {
	t.Parallel()
	base, stop := startCommand(t, regexp.MustCompile(`on (http://\S+/api/v2)`), "sim", "primero", "--addr", "127.0.0.1:0", "--password", "s3cret")
	for _, tt := range []struct {
		password string
		want     int
	}{{"s3cret", 200}, {"wrong", 401}} {
		req, _ := http.NewRequest("GET", base+"/cases?per=1", nil)
		req.SetBasicAuth("refbridge_api", tt.password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("password %q: status %d, want %d", tt.password, resp.StatusCode, tt.want)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C, want 0", code)
	}
}

func TestSimDTPRequiresCertificateAndKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, stop := startCommand(t, regexp.MustCompile(`on (https://\S+)$`), "sim", "dtp", "--addr", "127.0.0.1:0", "--pki", dir, "--subscription-key", "key-1")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client-refbridge.pem"), filepath.Join(dir, "client-refbridge-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"case_id":"c0c0c0c0-0000-4000-8000-000000000001","primero_user":"u","progres_interventionnumber":"TST-1","status":"Pending Acknowledgement"}`
	post := func(certs []tls.Certificate, key string) (int, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		req, _ := http.NewRequest("POST", base+"/ReceiveDecisionOutgoingReferral", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ocp-Apim-Subscription-Key", key)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post([]tls.Certificate{cert}, "key-1"); err != nil || code != 200 {
		t.Fatalf("with certificate and key: %d %v, want 200", code, err)
	}
	if code, err := post([]tls.Certificate{cert}, "key-2"); err != nil || code != 401 {
		t.Fatalf("wrong key: %d %v, want 401", code, err)
	}
	if _, err := post(nil, "key-1"); err == nil {
		t.Fatal("no client certificate: the handshake succeeded")
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"frobnicate"}, {"sim"}, {"sim", "mainframe"}, {"sim", "primero", "--nope"}} {
		var stderr strings.Builder
		if code := run(context.Background(), args, strings.NewReader(""), io.Discard, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "Usage: refbridge") {
			t.Errorf("%q: no usage text on stderr", args)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if code := run(context.Background(), []string{"version"}, strings.NewReader(""), &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "refbridge ") {
		t.Fatalf("version: exit %d, output %q", code, out.String())
	}
}

// TestSimDTPRemovesItsTemporaryPKI: without --pki the generated CA and
// client key live in a temporary directory that goes when the simulator
// stops (a private key must not be left behind).
func TestSimDTPRemovesItsTemporaryPKI(t *testing.T) {
	t.Parallel()
	key, stop := startCommand(t, regexp.MustCompile(`client key: (\S+)`), "sim", "dtp", "--addr", "127.0.0.1:0")
	dir := filepath.Dir(key)
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("client key while running: %v", err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C, want 0", code)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary PKI directory %s after the simulator stopped: %v", dir, err)
	}
}
