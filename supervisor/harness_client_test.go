package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kvClient is a plain net/http client of the test daemon over loopback. It
// opens a fresh connection per request (no keep-alive, so the transport
// never retries a request behind the test's back) and reports every error.
type kvClient struct {
	base string
	tr   *http.Transport
	hc   *http.Client

	mu    sync.Mutex
	acked map[string]string // every write the service acknowledged
}

func newKVClient(addr string) *kvClient {
	tr := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		DialContext:       (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	}
	return &kvClient{base: "http://" + addr, tr: tr, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second},
		acked: map[string]string{}}
}

func (c *kvClient) close() { c.tr.CloseIdleConnections() }

func (c *kvClient) do(method, path, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// put writes key=value and records it when acknowledged (200).
func (c *kvClient) put(key, value string) (int, error) {
	status, _, err := c.do(http.MethodPut, "/kv/"+key, value)
	if err == nil && status == http.StatusOK {
		c.mu.Lock()
		c.acked[key] = value
		c.mu.Unlock()
	}
	return status, err
}

func (c *kvClient) get(key string) (int, string, error) {
	return c.do(http.MethodGet, "/kv/"+key, "")
}

func (c *kvClient) stats() (statsReply, error) {
	status, body, err := c.do(http.MethodGet, "/stats", "")
	if err != nil {
		return statsReply{}, err
	}
	if status != http.StatusOK {
		return statsReply{}, fmt.Errorf("stats: status %d: %s", status, body)
	}
	var st statsReply
	err = json.Unmarshal([]byte(body), &st)
	return st, err
}

func (c *kvClient) ackedWrites() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.acked))
	for k, v := range c.acked {
		out[k] = v
	}
	return out
}

// mustPut writes and requires the acknowledgement now.
func (e *testEnv) mustPut(key, value string) {
	e.t.Helper()
	status, err := e.client.put(key, value)
	if err != nil || status != http.StatusOK {
		e.t.Fatalf("PUT %s: status %d, err %v", key, status, err)
	}
}

// servedBy returns the pid answering HTTP now.
func (e *testEnv) servedBy() int {
	e.t.Helper()
	st, err := e.client.stats()
	if err != nil {
		e.t.Fatalf("stats: %v", err)
	}
	return st.PID
}

// expectServedBy asserts who answers HTTP now.
func (e *testEnv) expectServedBy(pid int) {
	e.t.Helper()
	if got := e.servedBy(); got != pid {
		e.t.Errorf("HTTP served by pid %d, want %d", got, pid)
	}
}

// checkAcked asserts that every acknowledged write is readable now, with
// its value, from whoever serves (invariant 3).
func (e *testEnv) checkAcked() {
	e.t.Helper()
	acked := e.client.ackedWrites()
	if len(acked) == 0 {
		e.t.Error("no write was acknowledged: the test proves nothing")
	}
	for k, v := range acked {
		status, got, err := e.client.get(k)
		if err != nil || status != http.StatusOK || got != v {
			e.t.Errorf("acknowledged write %s=%q reads back status %d %q, err %v", k, v, status, got, err)
		}
	}
}

// checkAckedOnDisk asserts, once every daemon is gone, that the data
// directory holds every acknowledged write.
func (e *testEnv) checkAckedOnDisk() {
	recs, err := readStoreFile(e.data)
	if err != nil {
		e.t.Errorf("read the data directory: %v", err)
		return
	}
	for k, v := range e.client.ackedWrites() {
		if r, ok := recs[k]; !ok || r.Value != v {
			e.t.Errorf("acknowledged write %s=%q missing from the data directory (have %+v)", k, v, r)
		}
	}
}

// load runs writers against the service: each writes a fresh key, and once
// it is acknowledged reads it back on a new connection (a read must never
// miss an acknowledged write, invariant 3). Transport errors (refused,
// reset, cut short) and wrong answers are counted; 503 is a write the
// draining service refused, which is allowed and not acknowledged.
type load struct {
	c    *kvClient
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	writes   int
	rejected int
	errs     []string
}

func (e *testEnv) startLoad(name string, workers int) *load {
	l := &load{c: e.client, stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go l.run(fmt.Sprintf("%s-%d", name, w))
	}
	return l
}

func (l *load) run(prefix string) {
	defer l.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		key, val := prefix+"-"+strconv.Itoa(i), fmt.Sprintf("v%d@%d", i, time.Now().UnixNano())
		status, err := l.c.put(key, val)
		switch {
		case err != nil:
			l.fail("PUT %s: %v", key, err)
			continue
		case status == http.StatusServiceUnavailable:
			l.count(false)
			continue
		case status != http.StatusOK:
			l.fail("PUT %s: status %d", key, status)
			continue
		}
		l.count(true)
		if status, got, err := l.c.get(key); err != nil || status != http.StatusOK || got != val {
			l.fail("GET %s after its write was acknowledged: status %d %q, err %v", key, status, got, err)
		}
	}
}

func (l *load) count(acked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if acked {
		l.writes++
	} else {
		l.rejected++
	}
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

// halt stops the writers and waits for their last requests.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// expectClean stops the load and asserts no client saw an error and some
// writes were acknowledged.
func (e *testEnv) expectClean(l *load) {
	e.t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		shown := l.errs
		if len(shown) > 10 {
			shown = shown[:10]
		}
		e.t.Errorf("%d client errors (of %d acknowledged writes): %s", len(l.errs), l.writes, strings.Join(shown, "; "))
	}
	if l.writes == 0 {
		e.t.Error("the load had no acknowledged write")
	}
	e.t.Logf("load: %d writes acknowledged, %d refused while draining", l.writes, l.rejected)
}

// prober dials the service again and again, counting every failed connect
// (invariant 4: a listening socket never closes while supervised, so no
// client is ever refused).
type prober struct {
	addr string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	dials   int
	refused []string
}

func startProber(addr string) *prober {
	p := &prober{addr: addr, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *prober) run() {
	defer close(p.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
		p.mu.Lock()
		p.dials++
		if err != nil {
			p.refused = append(p.refused, err.Error())
		} else {
			c.Close()
		}
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

func (e *testEnv) expectNeverRefused(p *prober) {
	e.t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) > 0 {
		e.t.Errorf("%d of %d connects failed: %v", len(p.refused), p.dials, p.refused[:min(5, len(p.refused))])
	}
	if p.dials < 2 {
		e.t.Errorf("prober dialled only %d times", p.dials)
	}
}
