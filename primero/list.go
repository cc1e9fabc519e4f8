package primero

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"refbridge"
)

// Page sizes. Primero caps per at 1000; 500 keeps a page of full cases
// within a few MiB on a field-office link.
const (
	DefaultPer = 500
	MaxPer     = 1000
)

// page is one page of a paginated Primero collection.
type page[T any] struct {
	Data     []T `json:"data"`
	Metadata struct {
		Total int `json:"total"`
		Per   int `json:"per"`
	} `json:"metadata"`
}

// listing describes one paginated read.
type listing[T any] struct {
	op     string
	path   string
	params url.Values // filters and order; page and per are added here
	per    int
	// key identifies an item, to yield each one once across pages.
	key func(*T) string
	// verify checks a whole page before any of it is yielded; body is the
	// raw page for checks on fields T does not declare.
	verify func(body []byte, items []T) error
	// date, when set, is told the Date of the first page's answer.
	date func(time.Time)
	// advance, when set, moves the window of a walk in the listing's sort
	// order past a full page (keyset paging): given its last item it updates
	// the parameters and reports whether the window moved, in which case the
	// walk reads page 1 of the new window. Page numbers alone skip records
	// when others leave earlier pages mid-walk (a case updated during a walk
	// by last_updated_at moves to its end, and every later one shifts back).
	advance func(last *T, params url.Values) bool
}

// all walks the pages until page·per reaches metadata.total or a page is
// empty, yielding every item once. Items repeated on a later page (records
// shift when others are created or leave the filter mid-walk) are skipped.
// It stops at the first error, which it yields with T's zero value.
func (l listing[T]) all(ctx context.Context, c *Client) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		q := url.Values{}
		for k, v := range l.params {
			q[k] = v
		}
		q.Set("per", strconv.Itoa(l.per))
		seen := make(map[string]struct{})
		for n := 1; ; n++ {
			q.Set("page", strconv.Itoa(n))
			var p page[T]
			resp, err := c.do(ctx, getRequest(l.op, c.url(l.path, q)))
			if err == nil {
				err = decodeBody(l.op, resp, &p)
			}
			if err == nil && l.verify != nil {
				err = l.verify(resp.Body, p.Data)
			}
			if err != nil {
				yield(zero, err)
				return
			}
			if n == 1 && l.date != nil {
				if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
					l.date(t.UTC())
				}
			}
			for i := range p.Data {
				k := l.key(&p.Data[i])
				if k == "" {
					yield(zero, peerErrorf(refbridge.EInternal, "%s: page %d has an item without id", l.op, n))
					return
				}
				if _, dup := seen[k]; dup {
					continue
				}
				seen[k] = struct{}{}
				if !yield(p.Data[i], nil) {
					return
				}
			}
			// Use the page size Primero reports: if it capped ours, our
			// own per would end the walk early and skip records.
			per := p.Metadata.Per
			if per <= 0 {
				per = l.per
			}
			if len(p.Data) == 0 || (l.advance != nil && len(p.Data) < per) {
				return
			}
			if l.advance != nil && l.advance(&p.Data[len(p.Data)-1], q) {
				n = 0 // page 1 of the moved window
				continue
			}
			if n*per >= p.Metadata.Total {
				return
			}
		}
	}
}

// rawItems re-reads a page's items as field maps, for checks on fields the
// typed item does not declare.
func rawItems(body []byte) ([]map[string]json.RawMessage, error) {
	var p page[map[string]json.RawMessage]
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, jsonErrorWithoutValue(err)
	}
	return p.Data, nil
}

// checkPer validates a page size and applies the default.
func checkPer(per int) (int, error) {
	switch {
	case per == 0:
		return DefaultPer, nil
	case per < 0 || per > MaxPer:
		return 0, errorf(refbridge.EInvalid, "per must be between 1 and %d", MaxPer)
	}
	return per, nil
}

// failed returns an iterator that yields only err.
func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}
