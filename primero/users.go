package primero

import (
	"context"
	"net/url"
	"strconv"

	"refbridge"
)

// UserQuery selects users for ListUsers.
type UserQuery struct {
	// UserName keeps only the user with this exact user name.
	UserName string
	// Per is the page size: 0 means DefaultPer, at most MaxPer.
	Per int
}

// ListUsers pages through the users q selects and returns them all (a
// deployment has hundreds at most). As with cases, a user_name filter
// Primero did not apply is an error, never a list of other users.
func (c *Client) ListUsers(ctx context.Context, q UserQuery) ([]refbridge.User, error) {
	const op = "list users"
	per, err := checkPer(q.Per)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	if q.UserName != "" {
		params.Set("user_name", q.UserName)
	}
	l := listing[refbridge.User]{
		op:     op,
		path:   "/api/v2/users",
		params: params,
		per:    per,
		key: func(u *refbridge.User) string {
			if u.ID != 0 {
				return strconv.Itoa(u.ID)
			}
			return u.UserName
		},
		verify: func(_ []byte, users []refbridge.User) error {
			for _, u := range users {
				if q.UserName != "" && u.UserName != q.UserName {
					return peerErrorf(refbridge.EForbidden, "%s: Primero ignored the filter on user_name (user %d does not match it)", op, u.ID)
				}
			}
			return nil
		},
	}
	var users []refbridge.User
	for u, err := range l.all(ctx, c) {
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, nil
}
