// Command handoff supervises a stateful daemon and swaps its binary with no
// refused connection and no lost write.
//
//	handoff supervise --config FILE [--check]
//	handoff upgrade   [--binary PATH] [--dry-run] [--config FILE | --socket PATH] [--json]
//	handoff status    [--config FILE | --socket PATH] [--json]
//	handoff demo
//	handoff version
//
// Exit codes: 0 success (a swap committed, a dry run passed), 1 a swap was
// rolled back (or status found no incumbent), 2 any other error (bad
// usage, bad config, supervisor unreachable, swap refused).
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes shared by every subcommand.
const (
	exitOK         = 0
	exitRolledBack = 1
	exitError      = 2
)

// command is one subcommand: its entry point and one line of help.
type command struct {
	run     func(args []string) int
	summary string
}

var commands = map[string]command{}

// commandOrder is the order `handoff help` lists the subcommands in.
var commandOrder = []string{"supervise", "upgrade", "status", "demo", "version", "help"}

func init() {
	commands["supervise"] = command{runSupervise, "run a daemon under a supervisor that can swap its binary"}
	commands["upgrade"] = command{runUpgrade, "ask the running supervisor to swap the daemon's binary"}
	commands["status"] = command{runStatus, "show the incumbent, its state, the last swap and counters"}
	commands["demo"] = command{runDemo, "run the example daemon through several swaps and check every write"}
	commands["version"] = command{runVersion, "print the version"}
	commands["help"] = command{runHelp, "show help for a subcommand: handoff help upgrade"}
}

func main() { os.Exit(dispatch(os.Args[1:])) }

// dispatch runs the subcommand named by args[0] and returns its exit code.
func dispatch(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitError
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" {
		name = "help"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "handoff: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return exitError
	}
	return cmd.run(args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: handoff <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, name := range commandOrder {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'handoff help <command>' for its flags and an example.")
}

// runHelp prints the usage of one subcommand, or the command list.
func runHelp(args []string) int {
	if len(args) == 0 {
		usage(os.Stdout)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "handoff: unknown command %q\n", args[0])
		return exitError
	}
	return cmd.run([]string{"-h"})
}
