package refbridge

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is the one retry policy type: exponential backoff with full
// jitter, capped, and a ceiling on how long a peer's Retry-After is honoured.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries.
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	// MaxRetryAfter is the longest Retry-After we wait in-line; a longer one is
	// returned to the caller as ERateLimited so the engine can reschedule.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy suits a peer reached over a field-office link.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 10 * time.Second, MaxRetryAfter: 60 * time.Second}
}

// Backoff returns the wait before attempt n+1 (n ≥ 1 attempts made so far),
// uniformly drawn from [0, min(MaxDelay, BaseDelay·2^(n-1))].
func (p RetryPolicy) Backoff(n int) time.Duration {
	if p.BaseDelay <= 0 {
		return 0
	}
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	return rand.N(d + 1)
}
