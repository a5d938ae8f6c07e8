package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the run happened.
type machine struct {
	Nproc   int
	CPU     string
	Kernel  string
	GoVer   string
	MemMiB  int
	Date    time.Time
	TmpFS   string
	Somax   string
	Command string
}

func describeMachine(tmp string) machine {
	m := machine{Nproc: runtime.NumCPU(), Date: time.Now(), Command: strings.Join(os.Args, " ")}
	m.CPU = cpuModel()
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVer = strings.TrimSpace(string(out))
	}
	m.MemMiB = int(procStatusField("/proc/meminfo", "MemTotal:") / 1024)
	if out, err := exec.Command("df", "-T", tmp).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) > 1 {
			m.TmpFS = f[0] + " (" + f[1] + ")"
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		m.Somax = strings.TrimSpace(string(b))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// procStatusField reads a "Key: value kB" line of a /proc status-like file.
func procStatusField(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// procRes is one process's resource use.
type procRes struct {
	RSSKiB     int64
	FDs        int
	Threads    int64
	Goroutines int // -1 when unknown
	HeapKiB    int64
}

func readProcRes(pid int) procRes {
	p := fmt.Sprintf("/proc/%d", pid)
	r := procRes{RSSKiB: procStatusField(p+"/status", "VmRSS:"), Threads: procStatusField(p+"/status", "Threads:"), Goroutines: -1, HeapKiB: -1}
	if ents, err := os.ReadDir(p + "/fd"); err == nil {
		r.FDs = len(ents)
	}
	return r
}

// fdTargets lists what a process's descriptors point to, for leak reports.
func fdTargets(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		t, err := os.Readlink(dir + "/" + e.Name())
		if err == nil {
			out = append(out, e.Name()+"→"+t)
		}
	}
	return out
}
