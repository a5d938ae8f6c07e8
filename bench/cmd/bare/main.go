// Command bare is the physical floor without the library: a Go program that
// writes one byte to the socket named by HANDOFF_SOCK_FD as soon as main
// runs, then waits for the other end to close. The benchmark times
// exec → that byte, to separate the cost of starting any Go binary from
// the cost of the handoff library's DetectRole and Hello.
package main

import (
	"io"
	"os"
	"strconv"
)

func main() {
	fd, err := strconv.Atoi(os.Getenv("HANDOFF_SOCK_FD"))
	if err != nil {
		os.Exit(2)
	}
	f := os.NewFile(uintptr(fd), "sock")
	if _, err := f.Write([]byte{'h'}); err != nil {
		os.Exit(1)
	}
	io.Copy(io.Discard, f)
}
