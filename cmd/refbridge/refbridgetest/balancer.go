package refbridgetest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// Balance serves addr with a round-robin proxy over the addresses up
// returns at each request (the replicas running now): what a load balancer
// in front of several replicas does. With none up, or a replica dying
// mid-request, it answers 502 like a real one. It stops when tb ends.
func Balance(tb testing.TB, addr string, up func() []string) {
	tb.Helper()
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target := "127.0.0.1:1" // nothing listens there: 502
			if ups := up(); len(ups) > 0 {
				target = ups[next.Add(1)%uint64(len(ups))]
			}
			r.SetURL(&url.URL{Scheme: "http", Host: target})
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
}
