package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// RESP limits. Every allocation the parser makes is bounded by them.
const (
	respMaxArgs   = 1024            // elements in one command array
	respMaxBulk   = 16<<20 + 64<<10 // one argument: a maximal value, with room
	respMaxInline = 16 << 10        // an inline command line (also the read buffer)
	respSmallBulk = 64 << 10        // arguments up to this are read in one allocation
)

// protocolError is a malformed command. It unwraps to [errProtocol]; the
// connection is closed after the error reply, as Redis does.
type protocolError struct{ detail string }

// Error names what was malformed.
func (e *protocolError) Error() string { return "kvd: RESP protocol error: " + e.detail }

// Unwrap returns errProtocol.
func (e *protocolError) Unwrap() error { return errProtocol }

func protoErr(format string, args ...any) error {
	return &protocolError{detail: fmt.Sprintf(format, args...)}
}

// readCommand reads one command: a RESP array of bulk strings (what
// clients send) or an inline command line (what a person types). An empty
// command (*0, or a blank line) yields no arguments and no error.
func readCommand(r *bufio.Reader) ([][]byte, error) {
	b, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] == '*' {
		return readArray(r)
	}
	return readInline(r)
}

// readArray reads "*<n>\r\n" followed by n bulk strings.
func readArray(r *bufio.Reader) ([][]byte, error) {
	n, err := readHeader(r, '*', respMaxArgs)
	if err != nil || n <= 0 {
		return nil, err
	}
	args := make([][]byte, 0, min(n, 16))
	for range n {
		size, err := readHeader(r, '$', respMaxBulk)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			return nil, protoErr("null bulk string in a command")
		}
		arg, err := readBulk(r, size)
		if err != nil {
			return nil, err
		}
		args = append(args, arg)
	}
	return args, nil
}

// readHeader reads a "<prefix><integer>\r\n" line and checks the integer
// against limit (-1 is allowed: the null array or bulk string).
func readHeader(r *bufio.Reader, prefix byte, limit int) (int, error) {
	line, err := readLine(r, true)
	if err != nil {
		return 0, err
	}
	if len(line) == 0 || line[0] != prefix {
		return 0, protoErr("expected '%c', got %q", prefix, truncate(line))
	}
	n, ok := parseInt(line[1:])
	if !ok || n < -1 || n > int64(limit) {
		return 0, protoErr("invalid length %q (limit %d)", truncate(line[1:]), limit)
	}
	return int(n), nil
}

// readBulk reads size bytes and the CRLF after them. A large argument is
// read as it arrives, so a client that announces 16 MiB and sends nothing
// costs no 16 MiB buffer.
func readBulk(r *bufio.Reader, size int) ([]byte, error) {
	var arg []byte
	if size <= respSmallBulk {
		arg = make([]byte, size+2)
		if _, err := io.ReadFull(r, arg); err != nil {
			return nil, eofIsUnexpected(err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, r, int64(size)+2); err != nil {
			return nil, eofIsUnexpected(err)
		}
		arg = buf.Bytes()
	}
	if arg[size] != '\r' || arg[size+1] != '\n' {
		return nil, protoErr("bulk string not terminated by CRLF")
	}
	return arg[:size:size], nil
}

// readInline reads a line of space-separated words.
func readInline(r *bufio.Reader) ([][]byte, error) {
	line, err := readLine(r, false)
	if err != nil {
		return nil, err
	}
	return bytes.Fields(line), nil
}

// readLine returns one line without its terminator. Array and bulk
// headers need CRLF; inline commands may end with a bare LF. A line longer
// than the read buffer is a protocol error.
func readLine(r *bufio.Reader, strict bool) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protoErr("line longer than %d bytes", r.Size())
	}
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1], nil
	}
	if strict {
		return nil, protoErr("line not terminated by CRLF")
	}
	return line, nil
}

// parseInt parses an optional '-' and 1 to 18 decimal digits (no '+', no
// spaces), which is what RESP allows and cannot overflow.
func parseInt(b []byte) (int64, bool) {
	digits := b
	if len(b) > 0 && b[0] == '-' {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// eofIsUnexpected turns EOF inside a command into ErrUnexpectedEOF, so
// that only EOF between commands reads as a clean close.
func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// respWriter encodes replies onto a buffered writer; errors surface at
// Flush.
type respWriter struct{ w *bufio.Writer }

func (w respWriter) simple(s string) { w.w.WriteString("+" + s + "\r\n") }

// errorf writes an error reply; CR and LF in the message become spaces.
func (w respWriter) errorf(format string, args ...any) {
	msg := []byte(fmt.Sprintf(format, args...))
	for i, c := range msg {
		if c == '\r' || c == '\n' {
			msg[i] = ' '
		}
	}
	w.w.WriteString("-")
	w.w.Write(msg)
	w.w.WriteString("\r\n")
}

func (w respWriter) bulk(b []byte) {
	w.w.WriteString("$" + strconv.Itoa(len(b)) + "\r\n")
	w.w.Write(b)
	w.w.WriteString("\r\n")
}

func (w respWriter) null() { w.w.WriteString("$-1\r\n") }

func (w respWriter) array(n int) { w.w.WriteString("*" + strconv.Itoa(n) + "\r\n") }
