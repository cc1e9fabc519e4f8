package primerotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Outbound webhooks (contract §7): after each case create/update, a
// background job POSTs the record once. There is no retry; a failure is only
// logged, which is why a bridge must keep polling as a safety net.

// WebhookDelivery is one attempted webhook POST.
type WebhookDelivery struct {
	URL      string
	Event    string // "case.create", "case.update", or "" for POST .../sync
	RecordID string
	At       time.Time
	// Status is the HTTP status received, 0 when none was.
	Status int
	// Err describes a transport failure.
	Err string
}

// Failed reports whether Primero would log the delivery as failed.
func (d WebhookDelivery) Failed() bool { return d.Err != "" || d.Status >= 400 || d.Status == 0 }

func (wh Webhook) wants(event string) bool {
	return event == "" || len(wh.Events) == 0 || slices.Contains(wh.Events, event)
}

// queueWebhooks snapshots rec for every webhook registered for event and
// sends each asynchronously. Callers hold s.mu.
func (s *Sim) queueWebhooks(event string, rec *record) {
	if s.closed {
		return
	}
	for _, wh := range s.opts.Webhooks {
		if !wh.wants(event) {
			continue
		}
		canRead := func(f string) bool { return wh.ReadableFields == nil || slices.Contains(wh.ReadableFields, f) }
		data := s.view(rec, canRead, nil)
		data["record_id"] = rec.id
		data["record_type"] = "case"
		body, err := json.Marshal(map[string]any{"data": data})
		if err != nil {
			continue
		}
		s.inflight++
		go s.deliver(wh, event, rec.id, body)
	}
}

func (s *Sim) deliver(wh Webhook, event, recordID string, body []byte) {
	d := WebhookDelivery{URL: wh.URL, Event: event, RecordID: recordID}
	req, err := http.NewRequest(http.MethodPost, wh.URL, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		if wh.APIKey != "" {
			req.Header.Set("x-api-key", wh.APIKey)
		}
		if wh.BasicAuth != "" {
			user, pass, _ := strings.Cut(wh.BasicAuth, ":")
			req.SetBasicAuth(user, pass)
		}
		var resp *http.Response
		if resp, err = s.whc.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			d.Status = resp.StatusCode
		}
	}
	if err != nil {
		d.Err = err.Error()
	}
	s.mu.Lock()
	d.At = s.now()
	s.webhookLog = append(s.webhookLog, d)
	s.inflight--
	if s.inflight == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// WebhookLog returns every webhook delivery attempted so far, in order of
// completion. Call Close (or wait) first to see in-flight ones.
func (s *Sim) WebhookLog() []WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.webhookLog)
}

// WaitWebhooks blocks until no webhook is in flight.
func (s *Sim) WaitWebhooks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
}
