package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/flock"
)

// lockSampleEvery is how often /proc/locks is read while any world watches
// its lock. One sampler serves every world at once.
const lockSampleEvery = 2 * time.Millisecond

// lockWatch follows one data-dir lock through /proc/locks, the way
// internal/flock.Holder finds the holder: it never takes the lock (that could
// make a successor's acquire fail at the wrong moment).
//
// The kernel makes an exclusive flock on one inode exclusive, so two
// processes can only both hold "the lock" if the lock path came to name a
// second inode (a lock file removed or replaced under its holder). Every
// inode the path ever named is watched, and an instant with two of them
// locked is a violation. Within one consistent snapshot of /proc/locks (see
// readProcLocks), two entries with different pids are one too.
type lockWatch struct {
	path string

	mu        sync.Mutex
	inodes    map[uint64]bool
	samples   int
	heldSeen  int      // samples with a holder
	maxHeld   int      // most holders (inodes, or pids in a consistent snapshot) at one instant
	overlap   []string // descriptions of instants with two holders
	holders   []int    // distinct holders, in the order they appeared (consistent snapshots)
	lastOwner int
}

// watchLock starts sampling the lock of dataDir until the returned stop
// is called.
func watchLock(dataDir string) (*lockWatch, func()) {
	w := &lockWatch{path: filepath.Join(dataDir, flock.LockFileName), inodes: map[uint64]bool{}}
	sampler.add(w)
	return w, func() { sampler.remove(w) }
}

// result reports the worst instant seen.
func (w *lockWatch) result() (maxHeld int, overlap []string, holders []int, heldSamples, samples int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxHeld, append([]string(nil), w.overlap...), append([]int(nil), w.holders...), w.heldSeen, w.samples
}

// observe takes one /proc/locks read; consistent says whether it is one
// snapshot.
func (w *lockWatch) observe(locks []procLock, consistent bool) {
	var st unix.Stat_t
	statErr := unix.Stat(w.path, &st)
	w.mu.Lock()
	defer w.mu.Unlock()
	if statErr == nil {
		w.inodes[st.Ino] = true
	}
	inodes, pids := map[uint64]bool{}, map[int]bool{}
	var held []procLock
	for _, l := range locks {
		if w.inodes[l.ino] {
			held = append(held, l)
			inodes[l.ino], pids[l.pid] = true, true
		}
	}
	w.samples++
	if len(held) == 0 {
		return
	}
	w.heldSeen++
	n := len(inodes)
	if consistent {
		n = max(n, len(pids))
		if held[0].pid != w.lastOwner {
			w.lastOwner = held[0].pid
			w.holders = append(w.holders, held[0].pid)
		}
	}
	w.maxHeld = max(w.maxHeld, n)
	if n > 1 && len(w.overlap) < 10 {
		w.overlap = append(w.overlap, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000000"), held))
	}
}

// procLock is one granted FLOCK WRITE line of /proc/locks.
type procLock struct {
	pid int
	ino uint64
}

// parseProcLocks returns the granted exclusive flocks. Lines look like
//
//	1: FLOCK  ADVISORY  WRITE 12345 fe:01:5678 0 EOF
//
// and waiters ("1: -> FLOCK ...") are skipped. Matching is by inode: the
// device /proc/locks prints is the superblock's, which may differ from
// stat's, and every watched world's lock file is on the same filesystem.
func parseProcLocks(data []byte) []procLock {
	var out []procLock
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[3] != "WRITE" {
			continue
		}
		parts := strings.Split(f[5], ":")
		if len(parts) != 3 {
			continue
		}
		ino, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(f[4])
		out = append(out, procLock{pid: pid, ino: ino})
	}
	return out
}

// sampler reads /proc/locks for every watched lock.
var sampler = &lockSampler{watches: map[*lockWatch]bool{}}

type lockSampler struct {
	mu      sync.Mutex
	watches map[*lockWatch]bool
	running bool
	total   int // samples taken
	torn    int // samples that were not one consistent snapshot
	quit    chan struct{}
	done    chan struct{}
}

func (s *lockSampler) add(w *lockWatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watches[w] = true
	if !s.running {
		s.running = true
		s.quit, s.done = make(chan struct{}), make(chan struct{})
		go s.run(s.quit, s.done)
	}
}

func (s *lockSampler) remove(w *lockWatch) {
	s.mu.Lock()
	delete(s.watches, w)
	s.mu.Unlock()
}

func (s *lockSampler) run(quit, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(lockSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		s.sample()
	}
}

func (s *lockSampler) sample() {
	s.mu.Lock()
	ws := make([]*lockWatch, 0, len(s.watches))
	for w := range s.watches {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	data, consistent, err := readProcLocks()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.total++
	if !consistent {
		s.torn++
	}
	s.mu.Unlock()
	locks := parseProcLocks(data)
	for _, w := range ws {
		w.observe(locks, consistent)
	}
}

// readProcLocks reads /proc/locks and reports whether the content is one
// consistent snapshot. The kernel fills one read call under its lock
// list's lock, but at most one page per call; longer content comes in
// several reads, between which locks come and go (a lock may then be
// listed twice, or a release and the next acquire both show).
func readProcLocks() ([]byte, bool, error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	buf := make([]byte, 0, 64<<10)
	reads := 0
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			reads++
		}
		if err != nil || n == 0 {
			return buf, reads <= 1, nil
		}
	}
}

// samplerStats reports how many samples were taken and how many were not
// consistent snapshots.
func samplerStats() (total, torn int) {
	sampler.mu.Lock()
	defer sampler.mu.Unlock()
	return sampler.total, sampler.torn
}

// stopLockSampler ends the sampler goroutine (at the end of the run).
func stopLockSampler() {
	sampler.mu.Lock()
	running, quit, done := sampler.running, sampler.quit, sampler.done
	sampler.running = false
	sampler.mu.Unlock()
	if running {
		close(quit)
		<-done
	}
}
