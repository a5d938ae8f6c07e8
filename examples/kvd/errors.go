package main

import "errors"

// Sentinel errors of kvd.
var (
	// errProtocol means a RESP client sent a malformed command; see
	// protocolError.
	errProtocol = errors.New("kvd: RESP protocol error")

	// errSealFault is the Seal failure that --fail seal injects, to show a
	// rollback.
	errSealFault = errors.New("kvd: seal failed on purpose (--fail seal)")

	// errExitFault makes kvd exit with status 3 on purpose (--fail
	// exit-before-ready).
	errExitFault = errors.New("kvd: exiting before Ready on purpose (--fail exit-before-ready)")

	// errUnhealthyFault is what --fail unhealthy makes kvd report.
	errUnhealthyFault = errors.New("kvd: unhealthy on purpose (--fail unhealthy)")

	// errNoListeners means kvd has neither an inherited listener nor an
	// address to bind for any protocol.
	errNoListeners = errors.New("kvd: nothing to serve: no inherited listener named http or resp, and no --http or --resp address")
)
