package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// selfTest checks that the load client really counts what a server does to
// it: a server that answers the first request on each connection and then
// closes the connection after reading the second one (without answering,
// as a drain that closes "idle" keep-alive connections can do) must make
// the second request fail, and must see it exactly once (no retry).
type selfTest struct {
	Arrivals int
	PutErr   string
	GetErr   string
	Passed   bool
}

func runSelfTest() (selfTest, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return selfTest{}, err
	}
	defer ln.Close()
	var arrivals atomic.Int32
	go serveOneThenClose(ln, &arrivals)
	c := newHTTPClient(ln.Addr().String(), true)
	defer c.close()
	var st selfTest
	errs := []error{c.put("a", []byte("1")), nil}
	errs[1] = c.put("b", []byte("2"))
	_, _, gerr1 := c.get("a")
	_, _, gerr2 := c.get("b")
	st.Arrivals = int(arrivals.Load())
	if errs[1] != nil {
		st.PutErr = classOf(errs[1]).String() + ": " + errs[1].Error()
	}
	if gerr2 != nil {
		st.GetErr = classOf(gerr2).String() + ": " + gerr2.Error()
	}
	st.Passed = errs[0] == nil && errs[1] != nil && gerr1 == nil && gerr2 != nil && st.Arrivals == 4
	if !st.Passed {
		return st, fmt.Errorf("bench: client self-test failed: %+v (first put %v, first get %v)", st, errs[0], gerr1)
	}
	return st, nil
}

func serveOneThenClose(ln net.Listener, arrivals *atomic.Int32) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			br := bufio.NewReader(conn)
			for i := 0; i < 2; i++ {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				arrivals.Add(1)
				if i == 1 {
					return // close without answering
				}
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
			}
		}()
	}
}
