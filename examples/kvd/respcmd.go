package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// respCommand is one command of kvd's RESP subset.
type respCommand struct {
	minArgs, maxArgs int // including the name; maxArgs -1: no limit
	run              func(s *server, ctx context.Context, args [][]byte, w respWriter) (quit bool)
}

// respCommands is the subset: enough for redis-cli and
// "redis-benchmark -t set,get" (which also asks CONFIG GET at start).
var respCommands = map[string]respCommand{
	"PING":    {1, 2, cmdPing},
	"ECHO":    {2, 2, cmdEcho},
	"SET":     {3, -1, cmdSet},
	"GET":     {2, 2, cmdGet},
	"INFO":    {1, 2, cmdInfo},
	"QUIT":    {1, 1, cmdQuit},
	"COMMAND": {1, -1, cmdCommand},
	"CONFIG":  {2, -1, cmdConfig},
	"SELECT":  {2, 2, cmdSelect},
}

// respCommand runs one command (the respHandler of kvd).
func (s *server) respCommand(ctx context.Context, args [][]byte, w respWriter) bool {
	name := strings.ToUpper(string(args[0]))
	cmd, ok := respCommands[name]
	if !ok {
		w.errorf("ERR unknown command '%s'", truncate(args[0]))
		return false
	}
	if len(args) < cmd.minArgs || (cmd.maxArgs >= 0 && len(args) > cmd.maxArgs) {
		w.errorf("ERR wrong number of arguments for '%s' command", strings.ToLower(name))
		return false
	}
	return cmd.run(s, ctx, args, w)
}

func cmdPing(_ *server, _ context.Context, args [][]byte, w respWriter) bool {
	if len(args) == 2 {
		w.bulk(args[1])
	} else {
		w.simple("PONG")
	}
	return false
}

func cmdEcho(_ *server, _ context.Context, args [][]byte, w respWriter) bool {
	w.bulk(args[1])
	return false
}

// cmdSet answers +OK only once the write is durable. Options (EX, NX, …)
// are not supported.
func cmdSet(s *server, ctx context.Context, args [][]byte, w respWriter) bool {
	if len(args) > 3 {
		w.errorf("ERR syntax error (kvd supports SET key value only)")
		return false
	}
	if _, err := s.put(ctx, string(args[1]), args[2]); err != nil {
		w.errorf("ERR %v", err)
		return false
	}
	w.simple("OK")
	return false
}

func cmdGet(s *server, _ context.Context, args [][]byte, w respWriter) bool {
	if v, ok := s.get(string(args[1])); ok {
		w.bulk(v)
	} else {
		w.null()
	}
	return false
}

// cmdInfo answers the server section: pid, build id, revision.
func cmdInfo(s *server, _ context.Context, _ [][]byte, w respWriter) bool {
	st := s.stats()
	info := fmt.Sprintf("# Server\r\nkvd_build_id:%s\r\nprocess_id:%d\r\nuptime_in_seconds:%d\r\n"+
		"# Keyspace\r\nrevision:%d\r\nkeys:%d\r\nsealed:%t\r\n",
		st.BuildID, os.Getpid(), int64(st.UptimeSeconds),
		st.Revision, st.Keys, st.Sealed)
	w.bulk([]byte(info))
	return false
}

func cmdQuit(_ *server, _ context.Context, _ [][]byte, w respWriter) bool {
	w.simple("OK")
	return true
}

// cmdCommand answers COMMAND, COMMAND DOCS, … with an empty list: clients
// ask at start for hints and do without.
func cmdCommand(_ *server, _ context.Context, _ [][]byte, w respWriter) bool {
	w.array(0)
	return false
}

// cmdConfig answers CONFIG GET p with p and an empty value, which is what
// redis-benchmark needs to start; CONFIG SET and others are refused.
func cmdConfig(_ *server, _ context.Context, args [][]byte, w respWriter) bool {
	if !strings.EqualFold(string(args[1]), "GET") || len(args) != 3 {
		w.errorf("ERR kvd supports CONFIG GET parameter only")
		return false
	}
	w.array(2)
	w.bulk(args[2])
	w.bulk(nil)
	return false
}

// cmdSelect accepts database 0, the only one.
func cmdSelect(_ *server, _ context.Context, args [][]byte, w respWriter) bool {
	if string(args[1]) != "0" {
		w.errorf("ERR DB index is out of range")
		return false
	}
	w.simple("OK")
	return false
}
