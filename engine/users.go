package engine

import (
	"context"
	"sync"
	"time"

	"refbridge"
	"refbridge/primero"
)

// userCache keeps Primero user records briefly, so a burst of referrals by
// one case worker costs one look-up, and no run downloads every account
// (the reference fetched all users on every run, §8 #22).
type userCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cachedUser
}

type cachedUser struct {
	user    refbridge.User
	found   bool
	fetched time.Time
}

func (c *userCache) get(name string) (cachedUser, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.entries[name]
	// A negative age means the clock was set back since the fetch: the
	// entry's age is unknown, so it is fetched again rather than kept for
	// the size of the step.
	if age := c.now().Sub(u.fetched); !ok || age < 0 || age > c.ttl {
		return cachedUser{}, false
	}
	return u, true
}

func (c *userCache) put(name string, u cachedUser) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[name] = u
}

// user looks one Primero user up by user_name.
func (e *Engine) user(ctx context.Context, name string) (refbridge.User, bool, error) {
	if name == "" {
		return refbridge.User{}, false, nil
	}
	if u, ok := e.users.get(name); ok {
		return u.user, u.found, nil
	}
	users, err := call(e.primeroCircuit, func() ([]refbridge.User, error) {
		return e.primero.ListUsers(ctx, primero.UserQuery{UserName: name, Per: 10})
	})
	if err != nil {
		return refbridge.User{}, false, err
	}
	entry := cachedUser{fetched: e.now()}
	for _, u := range users {
		if u.UserName == name {
			entry.user, entry.found = u, true
		}
	}
	e.users.put(name, entry)
	return entry.user, entry.found, nil
}

// contactUsers returns the user records a referral's contact may come
// from: the case owner's and the profile's fallback user's.
func (e *Engine) contactUsers(ctx context.Context, owner string) ([]refbridge.User, error) {
	var out []refbridge.User
	for _, name := range []string{owner, e.p.Referrals().FallbackUser} {
		u, ok, err := e.user(ctx, name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, u)
		}
	}
	return out, nil
}
