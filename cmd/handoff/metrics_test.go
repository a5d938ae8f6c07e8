package main

import (
	"net"
	"testing"
)

// TestCarriedMetricsFits: a metrics socket carried through a self-upgrade
// is kept only when it still answers the (re-read) metrics_addr.
func TestCarriedMetricsFits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cases := []struct {
		cfg  string
		fits bool
	}{
		{"127.0.0.1:0", true},
		{ln.Addr().String(), true},
		{"127.0.0.1:1", false},    // another port
		{"127.0.0.2:0", false},    // another host
		{":0", false},             // all interfaces, the carried one is loopback only
		{"not an address", false}, // unparsable
	}
	for _, tc := range cases {
		if got := carriedMetricsFits(tc.cfg, ln); got != tc.fits {
			t.Errorf("metrics_addr %q with a socket on port %d: fits %v, want %v", tc.cfg, port, got, tc.fits)
		}
	}
}
