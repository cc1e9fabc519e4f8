package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"refbridge"
	"refbridge/mapping"
	"refbridge/primero"
	"refbridge/profile"
	"refbridge/store"
)

// cursorCases names the poll cursor: the newest last_updated_at of a
// Primero case whose referrals and decisions are stored.
const cursorCases = "primero.cases.last_updated_at"

// cursorPolled names when the last poll of Primero succeeded. It is kept in
// the store, not in memory, because only the elected leader polls: every
// replica can then report the same poll lag.
const cursorPolled = "primero.poll.succeeded_at"

// intakeBatch is how many polled items are stored per transaction.
const intakeBatch = 200

// checkpointCases and checkpointEvery bound what a poll holds before it
// stores its items and moves the cursor: cases walked, and time (each
// referred case costs a read of its referrals, which a failing peer can make
// seconds long: a walk must not have to finish, nor reach a count, before
// its progress counts, however short the job's timeout).
const (
	checkpointCases = 100
	checkpointEvery = time.Second
)

// cursorClock names Primero's clock as the last successful poll saw it
// (pollClock, JSON): what lets the next poll notice that Primero's clock was
// set back or forward in between.
const cursorClock = "primero.poll.clock"

// pollClockTolerance is how far Primero's clock may seem to drift between
// two polls before it counts as a jump and is logged: its Date has whole
// seconds, and the requests' latency blurs it further.
const pollClockTolerance = 5 * time.Second

// pollClock pairs Primero's time (the Date of the first page of a poll's
// walk) with the bridge's own at the same moment.
type pollClock struct {
	Server time.Time `json:"server"`
	Local  time.Time `json:"local"`
}

// lastPollClock is the pollClock this process stored last, with the
// monotonic reading taken with it: the time since then is measured on it,
// so a step of the bridge's own clock does not blur it.
type lastPollClock struct {
	mu    sync.Mutex
	clock pollClock
	mono  time.Time
}

// Poll walks the Primero cases updated since the cursor, less the overlap,
// and stores every referral to UNHCR (F2) and every decision on a proGres
// service (F1d) it finds. Items already stored with the same content are
// duplicates and change nothing, so the overlap costs reads, never doubles.
// The cursor moves only after everything up to it is stored, at the
// checkpoints during the walk (checkpointCases, checkpointEvery).
//
// The cursor is a last_updated_at, stamped by Primero's clock. When that
// clock is set back (an NTP step, or the correction of a step forward),
// cases saved afterwards carry stamps before the cursor, by more than the
// overlap if the step was large: a walk from the cursor would miss them for
// ever. So each walk also starts no later than where Primero's clock stood
// when the previous poll began — its Date now, less the time elapsed since
// — and a jump found so is logged with its size.
func (e *Engine) Poll(ctx context.Context) (int, error) {
	cur, err := e.store.Cursor(ctx, cursorCases)
	if err != nil {
		return 0, err
	}
	var from time.Time
	if cur != "" {
		t, err := time.Parse(time.RFC3339Nano, cur)
		if err != nil {
			return 0, refbridge.Errorf(refbridge.EInternal, "poll cursor %q is not a timestamp", cur)
		}
		from = t.Add(-e.cfg.PollOverlap)
	}
	prev, err := e.pollClock(ctx)
	if err != nil {
		return 0, err
	}
	newest, _ := time.Parse(time.RFC3339Nano, cur)
	saved, savedAt := newest, time.Now() // the cursor as stored, and when
	var pending []refbridge.Inbound
	found, unsaved := 0, 0
	// flush stores what the walk found so far and moves the cursor up to the
	// newest case walked: the walk is in last_updated_at order, so all before
	// it is stored. A walk that fails later (a peer fault, the job's timeout
	// on a long backlog) then keeps its progress, and the next poll goes on
	// from there instead of starting the whole walk again.
	flush := func() error {
		if len(pending) > 0 {
			_, err := e.store.Receive(ctx, pending)
			found += len(pending)
			pending = pending[:0]
			if err != nil {
				return err
			}
		}
		unsaved, savedAt = 0, time.Now()
		if !newest.After(saved) {
			return nil
		}
		if err := e.store.SetCursor(ctx, cursorCases, newest.UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
		saved = newest
		return nil
	}
	var (
		seen     pollClock // Primero's clock at the first walk
		mono     time.Time
		checked  bool
		rewindTo *time.Time // set when the walk must start again, earlier
	)
	for walk := 0; ; walk++ {
		local, localMono := e.now(), time.Now()
		var server time.Time
		// Once, on the first walk, as soon as Primero's time is known.
		check := func() {
			if checked || server.IsZero() {
				return
			}
			checked = true
			if start, ok := e.pollStart(prev, server, from); ok {
				rewindTo = &start
			}
		}
		q := primero.CaseQuery{UpdatedFrom: from, OrderBy: "last_updated_at", Order: "asc",
			ServerTime: func(t time.Time) { server = t }}
		rewindTo = nil
		for c, err := range e.primero.Cases(ctx, q) {
			if err != nil {
				return found, err
			}
			if check(); rewindTo != nil {
				break
			}
			if c.LastUpdatedAt.Before(from) {
				// Primero filters whole seconds: the rest of from's second
				// comes along, walked already (it is before the overlap).
				continue
			}
			items, err := e.derive(ctx, c)
			if err != nil {
				return found, err
			}
			pending = append(pending, items...)
			if c.LastUpdatedAt.After(newest) {
				newest = c.LastUpdatedAt
			}
			if unsaved++; len(pending) >= intakeBatch || unsaved >= checkpointCases || time.Since(savedAt) >= checkpointEvery {
				if err := flush(); err != nil {
					return found, err
				}
			}
		}
		if walk == 0 {
			seen, mono = pollClock{Server: server, Local: local}, localMono
			check() // an empty walk yielded nothing to check at
		}
		if rewindTo == nil {
			break
		}
		from = *rewindTo
	}
	if err := flush(); err != nil {
		return found, err
	}
	if !seen.Server.IsZero() {
		if err := e.setPollClock(ctx, seen, mono); err != nil {
			return found, err
		}
	}
	return found, e.store.SetCursor(ctx, cursorPolled, e.now().UTC().Format(time.RFC3339Nano))
}

// pollStart decides, from Primero's time now and as the previous poll saw
// it, whether a walk from `from` could miss cases saved since the previous
// poll began; if so it returns where the walk must start instead. It logs a
// jump of Primero's clock (sizes only).
func (e *Engine) pollStart(prev *pollClock, server, from time.Time) (time.Time, bool) {
	if prev == nil || from.IsZero() {
		return time.Time{}, false // the first poll, or a walk of everything
	}
	elapsed, known := e.sincePoll(*prev)
	var began time.Time // Primero's time, now, when the previous poll began
	switch {
	case known:
		began = server.Add(-elapsed)
		switch jump := server.Sub(prev.Server.Add(elapsed)); {
		case jump < -pollClockTolerance:
			e.log.Warn("primero clock went back since the last poll; polling again from before it", "by", (-jump).Round(time.Second).String())
		case jump > pollClockTolerance:
			e.log.Warn("primero clock went forward since the last poll", "by", jump.Round(time.Second).String())
		}
	case !server.Before(prev.Server):
		began = prev.Server
	default:
		// The bridge's clock went back too, and the time between the polls
		// is unknown: only a walk of every case is sure to miss none.
		e.log.Warn("primero clock went back since the last poll, and the bridge's own clock too; polling every case",
			"by_at_least", prev.Server.Sub(server).Round(time.Second).String())
		return time.Unix(0, 0).UTC(), true
	}
	start := began.Add(-e.cfg.PollOverlap)
	if !start.Before(from) {
		return time.Time{}, false
	}
	return start, true
}

// sincePoll returns the time elapsed since Primero's clock was read as
// prev: on the monotonic clock when this process read it, else on the
// bridge's clock, which is unknown when that went back since.
func (e *Engine) sincePoll(prev pollClock) (time.Duration, bool) {
	e.lastClock.mu.Lock()
	clock, mono := e.lastClock.clock, e.lastClock.mono
	e.lastClock.mu.Unlock()
	if !mono.IsZero() && clock.Server.Equal(prev.Server) && clock.Local.Equal(prev.Local) {
		return time.Since(mono), true
	}
	d := e.now().Sub(prev.Local)
	return d, d >= 0
}

// pollClock reads the stored pollClock; nil before any poll recorded one.
func (e *Engine) pollClock(ctx context.Context) (*pollClock, error) {
	v, err := e.store.Cursor(ctx, cursorClock)
	if err != nil || v == "" {
		return nil, err
	}
	var c pollClock
	if err := json.Unmarshal([]byte(v), &c); err != nil || c.Server.IsZero() {
		return nil, refbridge.Errorf(refbridge.EInternal, "poll clock %q is not a server and a local time", v)
	}
	return &c, nil
}

func (e *Engine) setPollClock(ctx context.Context, c pollClock, mono time.Time) error {
	c.Server, c.Local = c.Server.UTC(), c.Local.UTC()
	if err := e.store.SetCursor(ctx, cursorClock, string(encode(c))); err != nil {
		return err
	}
	e.lastClock.mu.Lock()
	defer e.lastClock.mu.Unlock()
	e.lastClock.clock, e.lastClock.mono = c, mono
	return nil
}

// LastPoll returns when a poll of Primero last succeeded, on any replica;
// the zero time when none has yet.
func (e *Engine) LastPoll(ctx context.Context) (time.Time, error) {
	v, err := e.store.Cursor(ctx, cursorPolled)
	if err != nil || v == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, refbridge.Errorf(refbridge.EInternal, "poll time %q is not a timestamp", v)
	}
	return t, nil
}

// ScanCase stores what one case holds for the flows at once (a Primero
// webhook named it); the poll remains the safety net, as Primero never
// retries a webhook.
func (e *Engine) ScanCase(ctx context.Context, recordID string) error {
	c, err := call(e.primeroCircuit, func() (refbridge.Case, error) { return e.primero.GetCase(ctx, recordID) })
	if err != nil {
		return err
	}
	items, err := e.derive(ctx, c)
	if err != nil || len(items) == 0 {
		return err
	}
	_, err = e.store.Receive(ctx, items)
	return err
}

// derive finds in one case the items flows F1d and F2 owe a peer.
func (e *Engine) derive(ctx context.Context, c refbridge.Case) ([]refbridge.Inbound, error) {
	var items []refbridge.Inbound
	receiving := e.p.Referrals().ReceivingAgency
	referred := false
	for _, svc := range c.Services {
		if svc.ImplementingAgency == receiving && svc.StatusReferred != nil && *svc.StatusReferred {
			referred = true
		}
		if svc.InterventionNumber == "" || (svc.UNHCRReferralStatus != refbridge.ReferralAccepted && svc.UNHCRReferralStatus != refbridge.ReferralRejected) {
			continue
		}
		st, problems := mapping.ServiceDecisionToDTP(e.p, mapping.ServiceDecisionInput{Case: c, ServiceUniqueID: svc.UniqueID})
		// The agency whose allow-list the mapping applied travels with the
		// status, for the filter at send time.
		item := refbridge.Inbound{
			Flow: refbridge.FlowServiceDecision, Key: svc.InterventionNumber + "#" + svc.UNHCRReferralStatus, CreateOnly: true,
			PeerRef: c.ID, State: refbridge.StateReceived,
			Payload: encode(outgoing[refbridge.InterventionStatus]{Message: st, Agency: c.OwnedByAgencyID}),
		}
		if len(problems) > 0 {
			item.State, item.Problems = refbridge.StateRejected, problems
		}
		// Hashed without the agency, as before it travelled along: a
		// decision stored earlier stays a duplicate instead of going again.
		item.ContentHash = hash(encode(st))
		existing, err := e.store.GetByKey(ctx, refbridge.FlowServiceDecision, item.Key)
		switch {
		case err == nil:
			// DTP has a decision once it is done: never sent again.
			if existing.State != refbridge.StateDone {
				if err := e.reopen(ctx, existing, item, "", ""); err != nil {
					return nil, err
				}
			}
			continue
		case refbridge.ErrorCodeOf(err) != refbridge.ENotFound:
			return nil, err
		}
		items = append(items, item)
	}
	if !referred {
		return items, nil
	}
	referrals, err := call(e.primeroCircuit, func() ([]refbridge.Referral, error) { return e.primero.ListReferrals(ctx, c.ID) })
	if err != nil {
		return nil, err
	}
	for _, r := range referrals {
		svc := c.Service(r.ServiceRecordID)
		if svc == nil || svc.ImplementingAgency != receiving || r.Status == refbridge.ReferralRevoked {
			continue
		}
		in := mapping.ReferralInput{Case: c, ServiceUniqueID: svc.UniqueID, Referral: r}
		key := mapping.OrgReferralID(c.CaseID, svc.UniqueID)
		ok, _ := e.p.ConsentHolds(profile.PrimeroToProgres, profile.ConsentInput{Case: &in.Case, Referral: &in.Referral})
		sent, err := e.store.GetByKey(ctx, refbridge.FlowReferral, key)
		switch {
		case err == nil && (sent.State == refbridge.StateDelivered || sent.State == refbridge.StateDone):
			// DTP has it: it is never sent again, whatever changes in the
			// case. Withdrawn consent stops every further message about it.
			if !ok && sent.Reason != ReasonConsentWithdrawn {
				if err := e.move(ctx, sent, store.Change{To: sent.State, Reason: ReasonConsentWithdrawn, AuditKind: refbridge.AuditHeld,
					Actor: primeroActor(c.LastUpdatedBy)}); err != nil && !isStoreConflict(err) {
					return nil, err
				}
			}
			continue
		case err != nil && refbridge.ErrorCodeOf(err) != refbridge.ENotFound:
			return nil, err
		}
		// What makes a referral new again before it is sent is its consent.
		item := refbridge.Inbound{
			Flow: refbridge.FlowReferral, Key: key, CreateOnly: true,
			ContentHash: hash([]byte(r.ID), []byte{boolByte(ok)}),
			Payload:     encode(in), State: refbridge.StateReceived,
			PeerRef: referralRef{CaseRecordID: c.ID, ReferralID: r.ID}.String(),
		}
		if err == nil {
			kind := refbridge.AuditKind("")
			if ok && sent.State == refbridge.StateHeld && sent.Reason == ReasonConsentMissing {
				kind = refbridge.AuditReleased
			}
			if err := e.reopen(ctx, sent, item, kind, primeroActor(c.LastUpdatedBy)); err != nil {
				return nil, err
			}
			continue
		}
		items = append(items, item)
	}
	return items, nil
}

// reopen puts a poll's newer content into an existing exchange that has
// not reached its peer: only if the exchange still is as it was read (its
// state and content), so a view of the case older than the exchange — taken
// before a concurrent scan moved it on — can never re-open a referral DTP
// already has. Items for keys not stored yet go through intake as
// CreateOnly, for the same reason. A lost race is left to the next poll.
func (e *Engine) reopen(ctx context.Context, ex refbridge.Exchange, item refbridge.Inbound, kind refbridge.AuditKind, actor string) error {
	if ex.ContentHash == item.ContentHash {
		return nil
	}
	err := e.move(ctx, ex, store.Change{From: []refbridge.ExchangeState{ex.State}, IfReason: ex.Reason,
		To: item.State, Problems: item.Problems, Payload: item.Payload, ContentHash: item.ContentHash, PeerRef: item.PeerRef,
		Enqueue: true, AuditKind: kind, Actor: actor})
	if isStoreConflict(err) {
		return nil
	}
	return err
}

func hash(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
