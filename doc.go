// Package handoff is the daemon side of a zero-downtime binary swap.
package handoff
