package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// httpClient is one load client with its own Transport, so a keep-alive
// client is one connection. Requests are built so that the Transport can
// never replay them (a body without GetBody, on PUT and GET alike): every
// failure the client library sees reaches the count.
type httpClient struct {
	base string
	hc   *http.Client
}

const requestTimeout = 10 * time.Second

func newHTTPClient(addr string, keepAlive bool) *httpClient {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		DisableKeepAlives:     !keepAlive,
		DisableCompression:    true,
		ResponseHeaderTimeout: requestTimeout,
	}
	return &httpClient{base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (c *httpClient) close() { c.hc.CloseIdleConnections() }

// put stores value under key; it returns nil only on 200.
func (c *httpClient) put(key string, value []byte) error {
	req, err := http.NewRequest(http.MethodPut, c.base+"/kv/"+key, nil)
	if err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(value)) // no GetBody: not replayable
	req.ContentLength = int64(len(value))
	_, err = c.do(req)
	return err
}

// get reads key; found is false on 404.
func (c *httpClient) get(key string) (value []byte, found bool, err error) {
	req, err := http.NewRequest(http.MethodGet, c.base+"/kv/"+key, nil)
	if err != nil {
		return nil, false, err
	}
	req.Body = io.NopCloser(http.NoBody) // not http.NoBody itself: not replayable
	body, err := c.do(req)
	if se, ok := err.(*statusError); ok && se.code == http.StatusNotFound {
		return nil, false, nil
	}
	return body, err == nil, err
}

// statusError is a non-200 answer.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func (c *httpClient) do(req *http.Request) ([]byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, body: string(bytes.TrimSpace(body))}
	}
	return body, nil
}
