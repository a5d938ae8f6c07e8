package sdnotify

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// roleEnv selects a helper role when the test binary re-executes itself.
const roleEnv = "SDNOTIFY_TEST_ROLE"

// roles are the helper processes the tests start (the test binary is the
// child). Each returns the process exit code.
var roles = map[string]func() int{
	"activation": roleActivation,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown role %q\n", name)
			os.Exit(3)
		}
		os.Exit(role())
	}
	goleak.VerifyTestMain(m)
}

// roleActivation prints the names ActivationFiles returns, whether each is
// a socket, and whether LISTEN_FDS is still set.
func roleActivation() int {
	files, err := ActivationFiles()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for _, f := range files {
		fi, err := f.File.Stat()
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Printf("%s socket=%v\n", f.Name, fi.Mode()&os.ModeSocket != 0)
		f.File.Close()
	}
	_, set := os.LookupEnv("LISTEN_FDS")
	fmt.Printf("LISTEN_FDS set=%v\n", set)
	return 0
}
