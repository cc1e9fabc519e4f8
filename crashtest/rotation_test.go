package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"refbridge"
	"refbridge/primero/primerotest"
	"refbridge/server"
)

// TestSecretsRotateWithoutRestart rotates, one after the other and without
// restarting `refbridge serve`, each secret the issue names: DTP's inbound
// bearer tokens (new and old valid together, then the old retired), the DTP
// subscription key, the DTP client certificate, and the Primero API
// password — each time editing the files the configuration names and
// sending SIGHUP, then showing the bridge works with the new secret only.
// (The encryption key is rotated by `refbridge keys rotate`, tested in cmd.)
func TestSecretsRotateWithoutRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := newWorld(t, worldConfig{Seed: 7, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 4, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second})
	w.start()
	w.waitHealthy(30 * time.Second)

	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reloads := 0
	reload := func() {
		t.Helper()
		reloads++
		w.hangup()
		ok, why := waitUntil(ctx, 20*time.Millisecond, func() (bool, string) {
			n := w.logSummary()["secrets reloaded"]
			return n >= reloads, fmt.Sprintf("%d reloads logged, want %d", n, reloads)
		})
		if !ok {
			t.Fatalf("SIGHUP: %s; log tail:\n%s", why, w.logTail(20))
		}
	}
	n := 0
	post := func(token string) (string, int) {
		t.Helper()
		n++
		iv := rotationIntervention(t, n)
		body, err := json.Marshal(refbridge.InterventionBatch{Interventions: []refbridge.Intervention{iv}, RequestType: refbridge.RequestTypeOutgoingReferral})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url(server.RouteInterventions), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return iv.InterventionNumber, resp.StatusCode
	}
	// delivered waits for the intervention's callback at DTP and returns
	// the common name of the client certificate it came with.
	delivered := func(number string) string {
		t.Helper()
		var cn string
		ok, why := waitUntil(ctx, 50*time.Millisecond, func() (bool, string) {
			for _, m := range w.dtp.Received() {
				if m.Accepted() && m.Status != nil && m.Status.InterventionNumber == number && m.Status.Status == refbridge.StatusPendingAcknowledgement {
					cn = m.ClientCert
					return true, ""
				}
			}
			return false, "no callback for " + number
		})
		if !ok {
			t.Fatalf("%s; log tail:\n%s", why, w.logTail(20))
		}
		return cn
	}

	t.Run("inbound tokens", func(t *testing.T) {
		old, next := w.token, "rotated-inbound-token"
		write("inbound-tokens", old+"\n"+next+"\n")
		reload()
		for _, tok := range []string{old, next} {
			if _, status := post(tok); status != http.StatusOK {
				t.Fatalf("during the rotation a token got %d, want both valid", status)
			}
		}
		write("inbound-tokens", next+"\n")
		reload()
		if _, status := post(old); status != http.StatusUnauthorized {
			t.Fatalf("the retired token got %d, want 401", status)
		}
		number, status := post(next)
		if status != http.StatusOK {
			t.Fatalf("the new token got %d", status)
		}
		delivered(number)
		w.token = next
	})

	t.Run("dtp subscription key", func(t *testing.T) {
		w.dtp.SetSubscriptionKeys("crash-subscription-key", "rotated-subscription-key")
		write("dtp-subscription-key", "rotated-subscription-key\n")
		reload()
		w.dtp.SetSubscriptionKeys("rotated-subscription-key") // the old key retired at DTP
		number, _ := post(w.token)
		delivered(number)
	})

	t.Run("dtp client certificate", func(t *testing.T) {
		pki := w.dtp.PKI()
		cert, key, err := pki.IssueClient("refbridge-rotated")
		if err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{cert: pki.ClientCertFile, key: pki.ClientKeyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		reload()
		number, _ := post(w.token)
		if cn := delivered(number); cn != "refbridge-rotated" {
			t.Fatalf("callback came with client certificate %q, want the rotated one", cn)
		}
	})

	t.Run("primero password", func(t *testing.T) {
		w.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: apiUser}, Password: "rotated-primero-password",
			Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}}) // the old password no longer works
		write("primero-password", "rotated-primero-password\n")
		reload()
		number, _ := post(w.token)
		delivered(number) // the case was filed in Primero with the new password first
	})
}

// rotationIntervention is a valid intervention for a new child, numbered n.
func rotationIntervention(t *testing.T, n int) refbridge.Intervention {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", "dtp-interventions-inbound.json"))
	if err != nil {
		t.Fatal(err)
	}
	var batch refbridge.InterventionBatch
	if err := json.Unmarshal(b, &batch); err != nil {
		t.Fatal(err)
	}
	iv := batch.Interventions[0]
	iv.InterventionNumber = fmt.Sprintf("ROT-26-PRTITV-%07d", n)
	iv.IndividualID = fmt.Sprintf("ROT-%08d", n)
	return iv
}

// hangup sends SIGHUP to every running replica (reload the secrets).
func (w *world) hangup() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rep := range w.replicas {
		if rep.proc != nil {
			if err := rep.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				w.t.Fatalf("SIGHUP: %v", err)
			}
		}
	}
}
