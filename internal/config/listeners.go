package config

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/handoff-go/handoff/internal/listenenv"
)

// networks are the listener kinds the supervisor can bind.
var networks = []string{"tcp", "tcp4", "tcp6", "unix", "udp", "udp4", "udp6", "unixgram"}

func (v *validator) listeners(raw *fileSchema, c *Config) error {
	for i, ls := range raw.Listener {
		l, err := v.listener(i, ls, c)
		if err != nil {
			return err
		}
		c.Listeners = append(c.Listeners, l)
	}
	return nil
}

func (v *validator) listener(i int, ls listenerSchema, c *Config) (Listener, error) {
	field := func(k string) string { return fmt.Sprintf("listener[%d].%s", i, k) }
	var l Listener
	if ls.Name == nil {
		return l, v.errorf(field("name"), "is required: the name daemons look the socket up by, e.g. \"http\"")
	}
	l.Name = *ls.Name
	if err := listenenv.CheckName(l.Name); err != nil {
		return l, v.errorf(field("name"), "%w", err)
	}
	if j := slices.IndexFunc(c.Listeners, func(o Listener) bool { return o.Name == l.Name }); j >= 0 {
		return l, v.errorf(field("name"), "%q is already the name of listener[%d]; names must be unique", l.Name, j)
	}
	if ls.Network == nil || !slices.Contains(networks, *ls.Network) {
		return l, v.errorf(field("network"), "%s: must be one of %s", describe(ls.Network), strings.Join(networks, ", "))
	}
	l.Network = *ls.Network
	if ls.Address == nil || *ls.Address == "" {
		return l, v.errorf(field("address"), "is required: host:port for tcp and udp, a path for unix and unixgram")
	}
	addr, err := v.address(l.Network, *ls.Address, c)
	if err != nil {
		return l, v.errorf(field("address"), "%w", err)
	}
	l.Address = addr
	if j := slices.IndexFunc(c.Listeners, func(o Listener) bool { return sameSocket(o, l) }); j >= 0 {
		return l, v.errorf(field("address"), "%s %s is already bound by listener[%d] (%s)", l.Network, l.Address, j, c.Listeners[j].Name)
	}
	return l, nil
}

func describe(p *string) string {
	if p == nil {
		return "is required"
	}
	return fmt.Sprintf("%q is not a network", *p)
}

// address checks a listener address for its network and returns it in the
// form the supervisor binds: unix paths absolute, others unchanged.
func (v *validator) address(network, addr string, c *Config) (string, error) {
	switch network {
	case "unix", "unixgram":
		return v.unixAddress(addr, c)
	default:
		return addr, checkHostPort(network, addr)
	}
}

func (v *validator) unixAddress(addr string, c *Config) (string, error) {
	path := addr
	if !isAbstract(addr) {
		path = v.resolve(addr)
	}
	if len(path) > MaxSocketPath {
		return "", fmt.Errorf("%s is %d bytes long; a unix socket path may have at most %d", path, len(path), MaxSocketPath)
	}
	if path == c.ControlSocket || path == c.TriggerSocket {
		return "", fmt.Errorf("%s is also control_socket or trigger_socket; give the listener its own path", path)
	}
	return path, nil
}

// checkHostPort checks a host:port for a TCP (or UDP) network.
func checkHostPort(network, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \"127.0.0.1:8080\", \"[::1]:8080\", \":8080\"): %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	if strings.HasPrefix(network, "udp") {
		_, err = net.ResolveUDPAddr(network, net.JoinHostPort(host, port))
	} else {
		_, err = net.ResolveTCPAddr(network, net.JoinHostPort(host, port))
	}
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	return nil
}

func isAbstract(addr string) bool { return strings.HasPrefix(addr, "@") }

// sameSocket reports whether two listeners would bind the same socket
// (port 0 never collides: the kernel picks a free port for each).
func sameSocket(a, b Listener) bool {
	if a.Address != b.Address || strings.HasSuffix(a.Address, ":0") {
		return false
	}
	return family(a.Network) == family(b.Network)
}

func family(network string) string {
	switch {
	case strings.HasPrefix(network, "tcp"):
		return "tcp"
	case strings.HasPrefix(network, "udp"):
		return "udp"
	}
	return "unix"
}
