package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/config"
)

// errNoOutcome means the supervisor hung up before the final event.
var errNoOutcome = errors.New("the supervisor closed the connection before the final event (did it stop?)")

const dialTimeout = 5 * time.Second

// triggerPath picks the trigger socket from --socket or from the config.
func triggerPath(cfgPath, socket string) (string, error) {
	switch {
	case socket != "" && cfgPath != "":
		return "", errors.New("handoff: give --config FILE or --socket PATH, not both")
	case socket != "":
		return socket, nil
	case cfgPath != "":
		return config.TriggerSocket(cfgPath)
	}
	return "", errors.New("handoff: give --config FILE or --socket PATH to reach the supervisor")
}

// dialTrigger connects to the supervisor, explaining the usual failures.
func dialTrigger(path string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", path, dialTimeout)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("handoff: no supervisor at %s: the socket does not exist; is `handoff supervise` running with this config? (%w)", path, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("handoff: nothing answers at %s: the supervisor is not running (stale socket file) (%w)", path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("handoff: permission denied on %s: run as the supervisor's user or root, or add your uid to allowed_uids (%w)", path, err)
	}
	return nil, fmt.Errorf("handoff: connect to the supervisor at %s: %w", path, err)
}

// call sends req over the trigger socket at path and hands each event line
// to onEvent (the raw line and its kind) until the final one, which it
// returns.
func call(path string, req request, onEvent func(line []byte, kind string)) ([]byte, string, error) {
	c, err := dialTrigger(path)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	// A refusal (peer uid) may be answered before the request is read, so a
	// failed write is reported only if no answer follows.
	werr := json.NewEncoder(c).Encode(req)
	line, kind, err := readEvents(c, onEvent)
	if err != nil && werr != nil {
		return nil, "", fmt.Errorf("handoff: send request to %s: %w", path, werr)
	}
	if err != nil {
		return nil, "", fmt.Errorf("handoff: supervisor at %s: %w", path, err)
	}
	return line, kind, nil
}

// readEvents reads event lines until the final one.
func readEvents(c net.Conn, onEvent func(line []byte, kind string)) ([]byte, string, error) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var head eventHead
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			return nil, "", fmt.Errorf("handoff: bad event line from the supervisor: %w", err)
		}
		line := append([]byte(nil), sc.Bytes()...)
		if head.Event != evProgress {
			return line, head.Event, nil
		}
		onEvent(line, head.Event)
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("handoff: reading events: %w", err)
	}
	return nil, "", errNoOutcome
}

// decodeError turns an error event line into an error naming its code.
func decodeError(line []byte) error {
	var ev errorEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return fmt.Errorf("handoff: bad error event: %w", err)
	}
	return fmt.Errorf("%s [%s]", ev.Error, ev.Code)
}
