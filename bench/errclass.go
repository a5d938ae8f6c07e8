package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// errClass is how a failed request failed, as the client saw it.
type errClass int

const (
	classRefused errClass = iota // connect refused: no socket listening
	classReset                   // connection reset (or broken pipe) by the server
	classEOF                     // connection closed before a complete response
	classTimeout                 // no answer within the client's deadline
	class5xx                     // the server answered an error (HTTP 5xx, RESP -ERR)
	classStale                   // a read missed the client's own acknowledged write
	classOther                   // anything else (the report lists examples)
	numClasses
)

var classNames = [numClasses]string{"refused", "reset", "EOF", "timeout", "5xx", "stale read", "other"}

func (c errClass) String() string { return classNames[c] }

// classify maps a client error to its class.
func classify(err error) errClass {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return classRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return classReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.Contains(err.Error(), "server closed idle connection"):
		return classEOF
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return classTimeout
	}
	return classOther
}

// errCounts counts failures by class.
type errCounts [numClasses]int

func (e *errCounts) add(o errCounts) {
	for i := range e {
		e[i] += o[i]
	}
}

// failures is every class except stale reads, which are a consistency
// failure and reported on their own.
func (e errCounts) failures() int {
	n := 0
	for i, v := range e {
		if errClass(i) != classStale {
			n += v
		}
	}
	return n
}
