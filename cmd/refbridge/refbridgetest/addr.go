package refbridgetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreeAddr returns a loopback address nobody listens on now, for a child
// that is restarted on the same address. Its port lies below the kernel's
// ephemeral range: a client dialling a port of that range while nothing
// listens can be given that very port as its own source (a TCP
// self-connect), and then holds it, so the restarted child cannot bind.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	low := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: another test's, or anyone's
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	tb.Fatalf("no free loopback port in 10000–%d after 200 tries", low-1)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default where it cannot be read).
func ephemeralLow() int {
	low, high := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low, &high)
	}
	return max(low, 10001)
}
