// Package sdnotify is the small part of the systemd service protocol that a
// supervisor needs, written against the kernel interfaces rather than
// libsystemd:
//
//   - sd_notify(3): state messages (READY=1, RELOADING=1 with
//     MONOTONIC_USEC=, STOPPING=1, STATUS=…) sent as datagrams to
//     $NOTIFY_SOCKET, a path or an abstract address starting with '@'.
//   - The file descriptor store (FDSTORE=1, FDNAME=…): descriptors sent with
//     SCM_RIGHTS, which systemd keeps while the service restarts and passes
//     back with LISTEN_FDS, so listening sockets survive even when the
//     supervisor and the daemon die together.
//   - sd_listen_fds(3): the sockets passed by socket activation (or from the
//     store), by name, through package listenenv.
//
// A nil *Notifier (no NOTIFY_SOCKET) accepts every call and sends nothing,
// so callers need no "under systemd?" branches.
package sdnotify
