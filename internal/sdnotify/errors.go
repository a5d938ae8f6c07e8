package sdnotify

import "errors"

// ErrBadSocket means $NOTIFY_SOCKET names no usable address (it must be an
// absolute path or an abstract name starting with '@').
var ErrBadSocket = errors.New("handoff: bad NOTIFY_SOCKET")
