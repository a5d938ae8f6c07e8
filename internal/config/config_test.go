package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture is a directory with an executable "daemon", a non-executable
// "notexec" and a directory "adir", plus the config file path.
type fixture struct {
	dir  string
	file string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "daemon"), "#!/bin/sh\n", 0o755)
	mustWrite(t, filepath.Join(dir, "notexec"), "#!/bin/sh\n", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return fixture{dir: dir, file: filepath.Join(dir, "handoff.toml")}
}

func mustWrite(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// baseKeys is a minimal valid document, one key per line, in order.
var baseKeys = []string{"control_socket", "trigger_socket", "binary"}

var baseValues = map[string]string{
	"control_socket": `"control.sock"`,
	"trigger_socket": `"trigger.sock"`,
	"binary":         `"daemon"`,
}

// doc renders the base document with overrides (an empty value deletes the
// key) followed by extra.
func doc(set map[string]string, extra string) string {
	var b strings.Builder
	for _, k := range baseKeys {
		v, ok := set[k]
		if !ok {
			v = baseValues[k]
		}
		if v != "" {
			b.WriteString(k + " = " + v + "\n")
		}
	}
	for k, v := range set {
		if _, base := baseValues[k]; !base {
			b.WriteString(k + " = " + v + "\n")
		}
	}
	b.WriteString(extra)
	return b.String()
}

const listenerTCP = `
[[listener]]
name = "http"
network = "tcp"
address = "127.0.0.1:0"
`

func TestParse_rejectsEachFieldWithOneClearError(t *testing.T) {
	long := `"/` + strings.Repeat("x", 120) + `"`
	cases := []struct {
		name  string
		set   map[string]string
		extra string
		field string
		want  string
	}{
		{name: "syntax", extra: "deadline = \"60s\n", field: "", want: "new lines"},
		{name: "unknown top key", extra: "dedline = \"60s\"\n", field: "dedline", want: "unknown key"},
		{name: "unknown listener key", extra: listenerTCP + "adress = \"x\"\n", field: "listener[0].adress", want: "known keys: name, network, address"},
		{name: "control_socket missing", set: map[string]string{"control_socket": ""}, field: "control_socket", want: "is required"},
		{name: "control_socket empty", set: map[string]string{"control_socket": `" "`}, field: "control_socket", want: "is empty"},
		{name: "control_socket too long", set: map[string]string{"control_socket": long}, field: "control_socket", want: "at most 107"},
		{name: "control_socket type", set: map[string]string{"control_socket": "1"}, field: "control_socket", want: "TOML integer; expected a string"},
		{name: "trigger_socket missing", set: map[string]string{"trigger_socket": ""}, field: "trigger_socket", want: "is required"},
		{name: "trigger_socket same as control", set: map[string]string{"trigger_socket": `"control.sock"`}, field: "trigger_socket", want: "same path as control_socket"},
		{name: "binary missing", set: map[string]string{"binary": ""}, field: "binary", want: "is required"},
		{name: "binary absent file", set: map[string]string{"binary": `"nosuch"`}, field: "binary", want: "no such file"},
		{name: "binary directory", set: map[string]string{"binary": `"adir"`}, field: "binary", want: "is a directory"},
		{name: "binary not executable", set: map[string]string{"binary": `"notexec"`}, field: "binary", want: "chmod +x"},
		{name: "args type", set: map[string]string{"args": `"--data"`}, field: "args", want: "expected a list of strings"},
		{name: "env reserved", extra: "[env]\nLISTEN_FDS = \"3\"\n", field: "env.LISTEN_FDS", want: "set by the supervisor"},
		{name: "env handoff role", extra: "[env]\nHANDOFF_ROLE = \"x\"\n", field: "env.HANDOFF_ROLE", want: "set by the supervisor"},
		{name: "env type", set: map[string]string{"env": "{ A = 1 }"}, field: "env", want: "expected a table of strings"},
		{name: "data_dir empty", set: map[string]string{"data_dir": `""`}, field: "data_dir", want: "is empty"},
		{name: "journal empty", set: map[string]string{"journal": `""`}, field: "journal", want: "is empty"},
		{name: "allowed_binaries empty entry", set: map[string]string{"allowed_binaries": `["daemon", ""]`}, field: "allowed_binaries[1]", want: "is empty"},
		{name: "allowed_binaries type", set: map[string]string{"allowed_binaries": `"daemon"`}, field: "allowed_binaries", want: "expected a list of paths"},
		{name: "allowed_uids negative", set: map[string]string{"allowed_uids": `[1001, -1]`}, field: "allowed_uids[1]", want: "is not a uid"},
		{name: "allowed_uids too large", set: map[string]string{"allowed_uids": `[4294967295]`}, field: "allowed_uids[0]", want: "is not a uid"},
		{name: "allowed_uids type", set: map[string]string{"allowed_uids": `["root"]`}, field: "allowed_uids", want: "expected a list of integers"},
		{name: "deadline not a duration", set: map[string]string{"deadline": `"6Os"`}, field: "deadline", want: `"6Os" is not a duration`},
		{name: "deadline integer", set: map[string]string{"deadline": `60`}, field: "deadline", want: `expected a duration string like "60s"`},
		{name: "deadline negative", set: map[string]string{"deadline": `"-1s"`}, field: "deadline", want: "must be positive"},
		{name: "drain_grace bad", set: map[string]string{"drain_grace": `"soon"`}, field: "drain_grace", want: "is not a duration"},
		{name: "drain_grace past deadline", set: map[string]string{"deadline": `"10s"`, "drain_grace": `"20s"`}, field: "drain_grace", want: "shorter than deadline"},
		{name: "exit_grace zero", set: map[string]string{"exit_grace": `"0s"`}, field: "exit_grace", want: "must be positive"},
		{name: "stop_grace bad", set: map[string]string{"stop_grace": `"30"`}, field: "stop_grace", want: "is not a duration"},
		{name: "max_draining negative", set: map[string]string{"max_draining": `-1`}, field: "max_draining", want: "out of range"},
		{name: "max_draining type", set: map[string]string{"max_draining": `"2"`}, field: "max_draining", want: "expected an integer"},
		{name: "metrics_addr no port", set: map[string]string{"metrics_addr": `"127.0.0.1"`}, field: "metrics_addr", want: "not host:port"},
		{name: "metrics_addr bad port", set: map[string]string{"metrics_addr": `"127.0.0.1:99999"`}, field: "metrics_addr", want: "invalid port"},
		{name: "listener type", set: map[string]string{"listener": `"http"`}, field: "listener", want: "expected [[listener]] tables"},
		{name: "listener name missing", extra: "[[listener]]\nnetwork = \"tcp\"\naddress = \":0\"\n", field: "listener[0].name", want: "is required"},
		{name: "listener name bad", extra: "[[listener]]\nname = \"a:b\"\nnetwork = \"tcp\"\naddress = \":0\"\n", field: "listener[0].name", want: "without ':'"},
		{name: "listener name duplicate", extra: listenerTCP + listenerTCP, field: "listener[1].name", want: "already the name of listener[0]"},
		{name: "listener network missing", extra: "[[listener]]\nname = \"a\"\naddress = \":0\"\n", field: "listener[0].network", want: "is required"},
		{name: "listener network bad", extra: "[[listener]]\nname = \"a\"\nnetwork = \"sctp\"\naddress = \":0\"\n", field: "listener[0].network", want: `"sctp" is not a network`},
		{name: "listener address missing", extra: "[[listener]]\nname = \"a\"\nnetwork = \"tcp\"\n", field: "listener[0].address", want: "is required"},
		{name: "listener tcp no port", extra: "[[listener]]\nname = \"a\"\nnetwork = \"tcp\"\naddress = \"127.0.0.1\"\n", field: "listener[0].address", want: "not host:port"},
		{name: "listener tcp4 with ipv6", extra: "[[listener]]\nname = \"a\"\nnetwork = \"tcp4\"\naddress = \"[::1]:80\"\n", field: "listener[0].address", want: "[::1]:80"},
		{name: "listener udp bad port", extra: "[[listener]]\nname = \"a\"\nnetwork = \"udp\"\naddress = \"127.0.0.1:x\"\n", field: "listener[0].address", want: "unknown port"},
		{name: "listener unix too long", extra: "[[listener]]\nname = \"a\"\nnetwork = \"unix\"\naddress = " + long + "\n", field: "listener[0].address", want: "at most 107"},
		{name: "listener unix is control", extra: "[[listener]]\nname = \"a\"\nnetwork = \"unix\"\naddress = \"control.sock\"\n", field: "listener[0].address", want: "also control_socket"},
		{name: "listener same address", extra: "[[listener]]\nname = \"a\"\nnetwork = \"tcp\"\naddress = \"127.0.0.1:8080\"\n[[listener]]\nname = \"b\"\nnetwork = \"tcp4\"\naddress = \"127.0.0.1:8080\"\n", field: "listener[1].address", want: "already bound by listener[0] (a)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			text := doc(tc.set, tc.extra)
			_, err := Parse([]byte(text), fx.file)
			checkFieldError(t, err, text, fx.file, tc.field, tc.want)
		})
	}
}

// checkFieldError asserts one *FieldError naming field, saying want, and
// pointing at a line that holds the field's key when the key is in the file.
func checkFieldError(t *testing.T, err error, text, file, field, want string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v (%T), want a *FieldError wrapping ErrInvalid", err, err)
	}
	if fe.Field != field || !strings.Contains(err.Error(), want) {
		t.Fatalf("got field %q, error %q; want field %q and %q", fe.Field, err, field, want)
	}
	if !strings.HasPrefix(err.Error(), "handoff: config "+file) {
		t.Fatalf("error %q does not start with the file name", err)
	}
	leaf := field[strings.LastIndexAny(field, ".]")+1:]
	if i := strings.IndexByte(leaf, '['); i >= 0 {
		leaf = leaf[:i]
	}
	if leaf == "" || !strings.Contains(text, leaf+" ") {
		return // the key is absent (a missing field): no line to point at
	}
	lines := strings.Split(text, "\n")
	if fe.Line < 1 || fe.Line > len(lines) || !strings.Contains(lines[fe.Line-1], leaf) {
		t.Fatalf("line %d does not hold key %q:\n%s", fe.Line, leaf, text)
	}
}

func TestParse_defaults(t *testing.T) {
	fx := newFixture(t)
	cfg, err := Parse([]byte(doc(nil, "")), fx.file)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:          fx.file,
		ControlSocket: filepath.Join(fx.dir, "control.sock"),
		TriggerSocket: filepath.Join(fx.dir, "trigger.sock"),
		Binary:        filepath.Join(fx.dir, "daemon"),
		Journal:       filepath.Join(fx.dir, "trigger.sock.journal"),
		Deadline:      DefaultDeadline, DrainGrace: DefaultDrainGrace,
		ExitGrace: DefaultExitGrace, StopGrace: DefaultStopGrace, MaxDraining: DefaultMaxDraining,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestParse_designExample parses the example of DESIGN section 8 (paths
// adapted to the fixture) and checks every field.
func TestParse_designExample(t *testing.T) {
	fx := newFixture(t)
	text := `control_socket   = "/run/kvd/control.sock"
trigger_socket   = "/run/kvd/trigger.sock"
binary           = "daemon"
args             = ["--data", "/var/lib/kvd"]
env              = { KVD_LOG = "info", A = "1" }
data_dir         = "/var/lib/kvd"
journal          = "/var/lib/handoff/kvd.journal"
allowed_binaries = ["/usr/local/bin/kvd-next", "next/kvd"]
allowed_uids     = [1001, 0]
deadline         = "90s"
drain_grace      = "30s"
exit_grace       = "5s"
stop_grace       = "1m"
max_draining     = 0
metrics_addr     = "127.0.0.1:9100"

[[listener]]
name    = "http"
network = "tcp"
address = "127.0.0.1:8080"

[[listener]]
name    = "sock"
network = "unix"
address = "run/kvd.sock"

[[listener]]
name    = "dns"
network = "udp4"
address = "127.0.0.1:5353"

[[listener]]
name    = "abs"
network = "unixgram"
address = "@kvd-log"
`
	cfg, err := Parse([]byte(text), fx.file)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: fx.file, ControlSocket: "/run/kvd/control.sock", TriggerSocket: "/run/kvd/trigger.sock",
		Binary: filepath.Join(fx.dir, "daemon"), Args: []string{"--data", "/var/lib/kvd"},
		Env: map[string]string{"KVD_LOG": "info", "A": "1"}, DataDir: "/var/lib/kvd",
		Journal:         "/var/lib/handoff/kvd.journal",
		AllowedBinaries: []string{"/usr/local/bin/kvd-next", filepath.Join(fx.dir, "next/kvd")},
		AllowedUIDs:     []uint32{1001, 0},
		Deadline:        90 * time.Second, DrainGrace: 30 * time.Second, ExitGrace: 5 * time.Second,
		StopGrace: time.Minute, MaxDraining: 0, MetricsAddr: "127.0.0.1:9100",
		Listeners: []Listener{
			{Name: "http", Network: "tcp", Address: "127.0.0.1:8080"},
			{Name: "sock", Network: "unix", Address: filepath.Join(fx.dir, "run/kvd.sock")},
			{Name: "dns", Network: "udp4", Address: "127.0.0.1:5353"},
			{Name: "abs", Network: "unixgram", Address: "@kvd-log"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
	if got := cfg.SortedEnv(); !reflect.DeepEqual(got, []string{"A=1", "KVD_LOG=info"}) {
		t.Fatalf("SortedEnv = %v", got)
	}
	if !cfg.Listeners[1].IsUnixPath() || cfg.Listeners[3].IsUnixPath() || !cfg.Listeners[2].IsPacket() || cfg.Listeners[0].IsPacket() {
		t.Fatal("IsUnixPath/IsPacket misclassify the listeners")
	}
}

func TestLoad_unreadableFileIsAPathError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.toml"))
	var pe *os.PathError
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "handoff: config: ") {
		t.Fatalf("got %v, want a wrapped *os.PathError", err)
	}
}

func TestLoad_readsTheFile(t *testing.T) {
	fx := newFixture(t)
	mustWrite(t, fx.file, doc(nil, listenerTCP), 0o644)
	cfg, err := Load(fx.file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Name != "http" {
		t.Fatalf("listeners = %+v", cfg.Listeners)
	}
}

func TestTriggerSocket_readsOnlyThatKey(t *testing.T) {
	fx := newFixture(t)
	mustWrite(t, fx.file, doc(map[string]string{"binary": `"nosuch"`}, ""), 0o644)
	got, err := TriggerSocket(fx.file)
	if err != nil || got != filepath.Join(fx.dir, "trigger.sock") {
		t.Fatalf("got %q, %v", got, err)
	}
	mustWrite(t, fx.file, doc(map[string]string{"trigger_socket": ""}, ""), 0o644)
	_, err = TriggerSocket(fx.file)
	checkFieldError(t, err, "", fx.file, "trigger_socket", "is required")
}
