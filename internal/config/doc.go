// Package config reads the TOML file that drives `handoff supervise`
// (DESIGN section 8).
//
// # Rules
//
//   - Unknown keys are errors, so a typo never silently falls back to a
//     default.
//   - Every problem is reported as one [*FieldError] that names the file, the
//     line (when the key is in the file) and the field, e.g.
//     "handoff: config /etc/handoff/kvd.toml:14: listener[1].address: ...".
//     It wraps [ErrInvalid].
//   - Relative paths (control_socket, trigger_socket, binary, data_dir,
//     journal, allowed_binaries, unix listener addresses) are resolved
//     against the directory of the config file, not the working directory,
//     so a config means the same thing whoever starts the supervisor from
//     wherever. A unix listener address starting with '@' is a Linux
//     abstract socket and is kept as it is.
//   - Durations are strings in Go's time.ParseDuration syntax ("60s",
//     "1m30s").
//
// Each field of [Config] documents its default.
package config
