package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// fileSchema mirrors the TOML document. Optional scalars are pointers, so a
// key that is absent (default) differs from one set to its zero value.
type fileSchema struct {
	ControlSocket   *string           `toml:"control_socket"`
	TriggerSocket   *string           `toml:"trigger_socket"`
	Binary          *string           `toml:"binary"`
	Args            []string          `toml:"args"`
	Env             map[string]string `toml:"env"`
	DataDir         *string           `toml:"data_dir"`
	Journal         *string           `toml:"journal"`
	AllowedBinaries []string          `toml:"allowed_binaries"`
	AllowedUIDs     []int64           `toml:"allowed_uids"`
	Deadline        *string           `toml:"deadline"`
	DrainGrace      *string           `toml:"drain_grace"`
	ExitGrace       *string           `toml:"exit_grace"`
	StopGrace       *string           `toml:"stop_grace"`
	MaxDraining     *int64            `toml:"max_draining"`
	MetricsAddr     *string           `toml:"metrics_addr"`
	Listener        []listenerSchema  `toml:"listener"`
}

type listenerSchema struct {
	Name    *string `toml:"name"`
	Network *string `toml:"network"`
	Address *string `toml:"address"`
}

// topKeys and listenerKeys list the known keys, for "unknown key" hints.
const (
	topKeys = "control_socket, trigger_socket, binary, args, env, data_dir, journal, " +
		"allowed_binaries, allowed_uids, deadline, drain_grace, exit_grace, stop_grace, " +
		"max_draining, metrics_addr, [[listener]]"
	listenerKeys = "name, network, address"
)

// decode parses the TOML strictly and turns the library's errors into one
// FieldError with the line it reports.
func decode(data []byte, file string) (*fileSchema, error) {
	var raw fileSchema
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(file, keyLines(data), err)
	}
	return &raw, nil
}

func decodeError(file string, lines lineIndex, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		return unknownKey(file, lines, &strict.Errors[0])
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		field := keyString(de.Key())
		return &FieldError{File: file, Line: line, Field: field, Err: typeHint(field, de.Error())}
	}
	return &FieldError{File: file, Err: err}
}

func unknownKey(file string, lines lineIndex, de *toml.DecodeError) error {
	line, _ := de.Position()
	key := de.Key()
	field, known := keyString(key), topKeys
	if len(key) > 1 && key[0] == "listener" {
		known = listenerKeys
		if i := lines.arrayIndexAt("listener", line); i >= 0 {
			field = fmt.Sprintf("listener[%d].%s", i, keyString(key[1:]))
		}
	}
	return &FieldError{File: file, Line: line, Field: field,
		Err: fmt.Errorf("unknown key (known keys: %s)", known)}
}

// expected says what each key holds, for type errors.
var expected = map[string]string{
	"args": "a list of strings", "env": "a table of strings", "allowed_binaries": "a list of paths",
	"allowed_uids": "a list of integers", "max_draining": "an integer",
	"deadline": `a duration string like "60s"`, "drain_grace": `a duration string like "25s"`,
	"exit_grace": `a duration string like "10s"`, "stop_grace": `a duration string like "30s"`,
	"listener": "[[listener]] tables", "listener.name": "a string", "listener.network": "a string",
	"listener.address": "a string",
}

var tomlType = regexp.MustCompile(`cannot decode TOML (\w+)`)

// typeHint rewrites the library's Go-typed message ("cannot decode TOML
// integer into struct field … of type string") in the operator's terms.
func typeHint(field, msg string) error {
	m := tomlType.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(msg)
	}
	want, ok := expected[field]
	if !ok {
		want = "a string"
	}
	return fmt.Errorf("is a TOML %s; expected %s", m[1], want)
}

func keyString(k toml.Key) string { return strings.Join(k, ".") }
