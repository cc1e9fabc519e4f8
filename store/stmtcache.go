package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
)

// stmtCacheSize bounds the prepared statements kept per connection: the
// store's and River's queries number a few dozen; River builds a few more
// with variable IN lists.
const stmtCacheSize = 256

// cachingConnector opens driver connections that keep their prepared
// statements. modernc's driver parses and plans every statement again on
// each ExecContext/QueryContext; under load that was a third of the serve
// process's CPU, all of it inside the single writer's turn.
type cachingConnector struct{ driver.Connector }

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

// connAPI is what cachingConn needs of the driver's connection.
type connAPI interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtAPI is what cachingConn needs of the driver's statements.
type stmtAPI interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachingConn reuses one prepared statement per query text. database/sql
// uses a connection from one goroutine at a time, so it needs no lock. A
// statement whose rows are still open is not reused: a second run of the
// same query then gets a statement of its own, closed after use.
type cachingConn struct {
	connAPI
	lru   *list.List               // of *cachedStmt, most recently used first
	stmts map[string]*list.Element // query → element of lru
}

type cachedStmt struct {
	query string
	stmt  stmtAPI
	busy  bool // rows of it are open
}

func newCachingConn(c driver.Conn) (driver.Conn, error) {
	api, ok := c.(connAPI)
	if !ok {
		c.Close()
		return nil, errors.New("store: sqlite driver connection lacks a context-aware interface")
	}
	return &cachingConn{connAPI: api, lru: list.New(), stmts: map[string]*list.Element{}}, nil
}

// stmt returns a prepared statement for query and the function that gives
// it back once its results are consumed.
func (c *cachingConn) stmt(ctx context.Context, query string) (stmtAPI, func() error, error) {
	if el, ok := c.stmts[query]; ok {
		cs := el.Value.(*cachedStmt)
		if !cs.busy {
			c.lru.MoveToFront(el)
			cs.busy = true
			return cs.stmt, func() error { cs.busy = false; return nil }, nil
		}
		s, err := c.prepare(ctx, query)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	s, err := c.prepare(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	cs := &cachedStmt{query: query, stmt: s, busy: true}
	c.stmts[query] = c.lru.PushFront(cs)
	if c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return s, func() error { cs.busy = false; return nil }, nil
}

func (c *cachingConn) prepare(ctx context.Context, query string) (stmtAPI, error) {
	ds, err := c.connAPI.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s, ok := ds.(stmtAPI)
	if !ok {
		ds.Close()
		return nil, errors.New("store: sqlite driver statement lacks a context-aware interface")
	}
	return s, nil
}

// evict drops el from the cache; a statement still in use is closed by its
// own release instead.
func (c *cachingConn) evict(el *list.Element) {
	cs := el.Value.(*cachedStmt)
	c.lru.Remove(el)
	delete(c.stmts, cs.query)
	if !cs.busy {
		cs.stmt.Close()
	}
}

// ExecContext implements driver.ExecerContext with a cached statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := s.ExecContext(ctx, args)
	return res, errors.Join(err, release())
}

// QueryContext implements driver.QueryerContext with a cached statement,
// given back when the rows are closed.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, args)
	if err != nil {
		return nil, errors.Join(err, release())
	}
	return &cachedRows{Rows: rows, release: release}, nil
}

// Unwrap returns the driver's connection (modernc's Limit looks through wrappers).
func (c *cachingConn) Unwrap() driver.Conn { return c.connAPI }

// Close finalizes every cached statement, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		errs = append(errs, el.Value.(*cachedStmt).stmt.Close())
	}
	c.lru.Init()
	clear(c.stmts)
	return errors.Join(append(errs, c.connAPI.Close())...)
}

// cachedRows gives its statement back to the cache on Close.
type cachedRows struct {
	driver.Rows
	release func() error
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		err = errors.Join(err, r.release())
		r.release = nil
	}
	return err
}

// The column-type methods keep sql.Rows.ColumnTypes as informative as the
// driver's own rows make it.

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}
