package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func parseAll(input string) ([][]string, error) {
	r := bufio.NewReaderSize(strings.NewReader(input), respMaxInline)
	var cmds [][]string
	for {
		args, err := readCommand(r)
		if err != nil {
			return cmds, err
		}
		var cmd []string
		for _, a := range args {
			cmd = append(cmd, string(a))
		}
		cmds = append(cmds, cmd)
	}
}

func TestReadCommand_valid(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{name: "array", input: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", want: "[[SET k hello]]"},
		{name: "binary-safe bulk", input: "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", want: "[[GET a\r\nb]]"},
		{name: "empty bulk", input: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: "[[ECHO ]]"},
		{name: "pipelined", input: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", want: "[[PING] [PING]]"},
		{name: "inline", input: "SET  k\tv\r\nPING\n", want: "[[SET k v] [PING]]"},
		{name: "empty array and blank line", input: "*0\r\n*-1\r\n\r\nPING\r\n", want: "[[] [] [] [PING]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := parseAll(tc.input)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the commands: %v, want EOF", err)
			}
			if got := fmt.Sprint(cmds); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReadCommand_malformed: every malformed input is a protocol error or
// an unexpected EOF (a command cut short), never a panic, never a command.
func TestReadCommand_malformed(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  error
	}{
		{name: "array count not a number", input: "*x\r\n", want: errProtocol},
		{name: "array count with plus", input: "*+1\r\n$4\r\nPING\r\n", want: errProtocol},
		{name: "array count too large", input: "*1025\r\n", want: errProtocol},
		{name: "array count huge", input: "*99999999999999999999\r\n", want: errProtocol},
		{name: "array count below -1", input: "*-2\r\n", want: errProtocol},
		{name: "array without CRLF", input: "*1\n$4\r\nPING\r\n", want: errProtocol},
		{name: "element not bulk", input: "*1\r\n+PING\r\n", want: errProtocol},
		{name: "bulk length too large", input: fmt.Sprintf("*1\r\n$%d\r\n", respMaxBulk+1), want: errProtocol},
		{name: "null bulk in command", input: "*1\r\n$-1\r\n", want: errProtocol},
		{name: "bulk length negative", input: "*1\r\n$-5\r\n", want: errProtocol},
		{name: "bulk not terminated", input: "*1\r\n$4\r\nPINGxx", want: errProtocol},
		{name: "bulk short", input: "*1\r\n$4\r\nPI", want: io.ErrUnexpectedEOF},
		{name: "big bulk short", input: fmt.Sprintf("*1\r\n$%d\r\nabc", respSmallBulk+1), want: io.ErrUnexpectedEOF},
		{name: "missing elements", input: "*2\r\n$4\r\nPING\r\n", want: io.ErrUnexpectedEOF},
		{name: "header cut", input: "*2", want: io.ErrUnexpectedEOF},
		{name: "inline line too long", input: strings.Repeat("a", respMaxInline+1), want: errProtocol},
		{name: "inline without newline", input: "PING", want: io.ErrUnexpectedEOF},
		{name: "empty length", input: "*1\r\n$\r\n", want: errProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := parseAll(tc.input)
			if len(cmds) != 0 || !errors.Is(err, tc.want) {
				t.Fatalf("got commands %q and error %v; want no command and %v", cmds, err, tc.want)
			}
		})
	}
}

// FuzzReadCommand: no input panics, and every command the parser returns
// re-encodes to bytes that parse to the same command.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "PING\r\n", "*0\r\n", "*1\r\n$-1\r\n",
		"*2\r\n$3\r\nGET\r\n$99999999\r\n", "*-1\r\n", "\r\n", "*1\r\n$4\r\nPING",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), respMaxInline)
		for range 64 {
			args, err := readCommand(r)
			if err != nil {
				return
			}
			again, err := readCommand(bufio.NewReader(bytes.NewReader(encodeCommand(args))))
			if err != nil || fmt.Sprintf("%q", again) != fmt.Sprintf("%q", args) {
				t.Fatalf("re-encoded %q parsed as %q (%v)", args, again, err)
			}
		}
	})
}

// encodeCommand is what a client sends.
func encodeCommand(args [][]byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

func TestRespWriter_errorHasNoLineBreaks(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	respWriter{w}.errorf("ERR bad\r\nthing")
	w.Flush()
	if b.String() != "-ERR bad  thing\r\n" {
		t.Fatalf("got %q", b.String())
	}
}
