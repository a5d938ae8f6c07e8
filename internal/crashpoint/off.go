//go:build !handoff_crashpoints

package crashpoint

// Enabled reports whether crash points are compiled in. In this build they
// are not, and Hit compiles to nothing.
const Enabled = false

// Hit does nothing: crash points exist only in builds with the
// handoff_crashpoints tag.
func Hit(Point) {}
