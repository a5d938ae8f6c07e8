package config

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error Load and Parse return for a config
// that cannot be used (syntax, unknown key, missing or bad value). An
// unreadable file is reported as the *os.PathError instead.
var ErrInvalid = errors.New("handoff: invalid config")

// FieldError names the one field of a config that is wrong, with its line
// when the key appears in the file, so the operator can go straight to it.
type FieldError struct {
	// File is the config file's path as given to Load.
	File string
	// Line is the 1-based line of the key, or 0 when the key is missing or
	// the position is unknown.
	Line int
	// Field is the key path, e.g. "deadline" or "listener[1].address"; empty
	// for a syntax error that belongs to no key.
	Field string
	// Err says what is wrong and what to do.
	Err error
}

// Error formats "handoff: config FILE[:LINE]: FIELD: problem".
func (e *FieldError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("handoff: config %s: %v", where, e.Err)
	}
	return fmt.Sprintf("handoff: config %s: %s: %v", where, e.Field, e.Err)
}

// Unwrap returns ErrInvalid and the underlying problem.
func (e *FieldError) Unwrap() []error { return []error{ErrInvalid, e.Err} }
