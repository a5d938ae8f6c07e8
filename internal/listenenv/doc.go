// Package listenenv is the inherited-socket contract between a spawner (the
// supervisor) and a daemon: which descriptors a process inherits, under which
// names, and in which role. It follows the systemd socket-activation
// conventions (sd_listen_fds(3)) and adds two variables of its own.
//
// # The contract
//
//	fd 3 … 3+n-1      the listeners, in a fixed order
//	LISTEN_FDS        n
//	LISTEN_FDNAMES    the names of the listeners in fd order, colon-separated ("http:resp")
//	HANDOFF_ROLE      "successor" for a process spawned to take over; unset for a cold start
//	HANDOFF_SOCK_FD   3+n, the socketpair end to the supervisor (successor only)
//
// Every other descriptor is close-on-exec in the spawner.
//
// # LISTEN_PID
//
// systemd sets LISTEN_PID to the pid of the process the variables are meant
// for, so that a child that merely inherits the environment ignores them.
// Go's os/exec cannot put a child's own pid in its environment (the pid is
// known only after the fork), so a handoff supervisor leaves LISTEN_PID unset
// and [Parse] accepts that. When LISTEN_PID is set (systemd spawned this
// process directly) it must name this process. When it names another
// process the variables were meant for an ancestor: they are ignored as
// systemd would (a cold start with no listeners, explained by
// [Inherited.Note]) and nothing is marked or closed. A LISTEN_PID that is not
// a pid at all is an error. LISTEN_PIDFDID, set by newer systemd, is not
// checked but is removed with the rest.
//
// # Reading once
//
// [Read] parses the variables, removes them from the environment so that a
// later re-exec or a child of the daemon starts cold, and marks every
// inherited descriptor close-on-exec so that no later child inherits one by
// accident. Names must be unique; with LISTEN_FDNAMES unset each listener is
// named LISTEN_FD_<fd>.
package listenenv
