// Package httpdrain is the HTTP part of a
// [github.com/handoff-go/handoff.Drainable] for daemons
// built on net/http: it drains an [http.Server] for a binary swap without
// [http.Server.Shutdown].
//
// Shutdown is the wrong tool for a handoff: it closes idle keep-alive
// connections at once, under clients that are about to reuse them, and a
// request it reads after shutdown began is dropped without an answer. A
// [Server] instead moves clients off politely and closes a connection only
// between requests.
//
// # Lifecycle
//
// Wrap the server with [New], call [Server.Serve] for each listener (it
// blocks for the server's whole life, through any number of drains and
// resumes), and call the hooks from the daemon's Drainable:
//
//   - [Server.Drain] stops accepting: it closes this process's listener,
//     while the kernel socket stays open in the supervisor and the
//     successor, so new connections wait in the backlog. Requests on
//     connections already open keep being answered, reads and writes alike
//     (the daemon still holds the data-dir lock), but every response now
//     says "Connection: close" and the connection is closed after it. Drain
//     returns when no request is in progress.
//   - [Server.Seal] answers the requests already received, closes every
//     remaining connection between requests, and from then on answers
//     nothing: a request that arrives later is not passed to the handler.
//   - [Server.Resume] undoes both after an aborted handoff: keep-alive is
//     on again and each listener is rebuilt from a duplicate of the very
//     socket that Serve kept, so connections that queued in the backlog in
//     the meantime are served.
//
// # What a request "in progress" is
//
// A request is in progress from the moment the server reads its first byte
// until its handler returns. Drain waits for every request in progress;
// Seal lets each of them finish, and also admits a request whose bytes
// have already reached the socket's receive queue when Seal starts. Every
// other request is refused: the server reads no further byte from a
// connection that is idle when Seal runs, and a request that reaches the
// handler anyway (pipelined behind an admitted one) gets its connection
// closed before anything is written.
//
// # What a keep-alive client can see
//
// During Drain: nothing unusual. Each connection gets one more response,
// which says "Connection: close", and the client's next request opens a new
// connection, which waits in the backlog until the successor (or, after an
// abort, this process) accepts it.
//
// At Seal, a connection that stayed idle through the whole drain is
// closed. HTTP/1.1 has no way to warn a client first, so a client that
// sends a request on that connection at the same instant (its bytes still
// on the wire when the close happens) sees the connection close (EOF, or a
// reset) before any response byte. That request was not processed, so it is
// safe to retry on a new connection. Go's Transport retries such a request
// by itself when it is idempotent or has GetBody; other clients and other
// methods see the error. Ways to shrink the window: keep the drain long
// enough for busy connections to take their "Connection: close" response;
// set a short IdleTimeout on the http.Server so that idle connections are
// closed long before a handoff (the usual keep-alive race, at a time of
// the server's choosing); have clients retry requests that failed before
// any response byte.
//
// A response whose header was already sent when Drain started cannot carry
// "Connection: close"; its connection becomes idle and is closed by Seal as
// above. The final bytes of a response whose handler returned before Seal
// may still be written after Seal returns; they hold nothing computed after
// the seal.
//
// # Restrictions
//
// HTTP/1.x over plain TCP or Unix stream listeners (each must implement
// [syscall.Conn], so that Serve can duplicate it). Terminate TLS in front,
// or wrap the handler, not the listener. Set ReadHeaderTimeout on the
// http.Server so that a client that sends half a request cannot hold Seal
// until its deadline.
package httpdrain
