package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/handoff-go/handoff/internal/flock"
)

// lockHolder returns the pid holding the data-dir lock of dir, or 0, without
// ever taking the lock. It asks flock.Holder (/proc/locks) first; that file
// is built a chunk per read(2) and can skip or repeat an entry while other
// locks come and go, so flock.Holder answers only when two passes agree,
// and the test
// makes that answer certain from the kernel's per-descriptor lock list of
// the process the pid file names (/proc/<pid>/fdinfo), which cannot skip:
// the sequences of holders the tests assert must not depend on luck.
func lockHolder(dir string) (int, error) {
	pid, err := flock.Holder(dir)
	if err != nil || pid != 0 {
		return pid, err
	}
	if p, _, err := flock.HolderFromPidFile(dir); err == nil && p > 0 && holdsFlock(p, dir) {
		return p, nil
	}
	return 0, nil
}

// holdsFlock reports whether process pid holds a flock on dir's lock file,
// from the "lock:" lines of its /proc/<pid>/fdinfo entries.
func holdsFlock(pid int, dir string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, flock.LockFileName), &st); err != nil {
		return false
	}
	want := fmt.Sprintf(":%d ", st.Ino)
	base := "/proc/" + strconv.Itoa(pid) + "/fdinfo/"
	ents, err := os.ReadDir(base)
	if err != nil {
		return false
	}
	for _, e := range ents {
		data, err := os.ReadFile(base + e.Name())
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if strings.HasPrefix(line, "lock:") && strings.Contains(line, "FLOCK") &&
				strings.Contains(line, " "+strconv.Itoa(pid)+" ") && strings.Contains(line, want) {
				return true
			}
		}
	}
	return false
}
