package main

import (
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(config) bool
	}{
		{name: "defaults", args: []string{"--data", "/d", "--build-id", "b1"}, check: func(c config) bool {
			return c.control == filepath.Join("/d", "control.sock") && c.buildID == "b1"
		}},
		{name: "data required", args: []string{"--http", ":1"}, wantErr: "--data is required"},
		{name: "stray argument", args: []string{"--data", "/d", "x"}, wantErr: "unexpected argument"},
		{name: "faults", args: []string{"--data", "/d", "--fail", "unhealthy,slow-seal=2s", "--fail", "seal"},
			check: func(c config) bool {
				return c.faults.unhealthy && c.faults.failSeal && c.faults.slowSeal == 2*time.Second
			}},
		{name: "unknown fault", args: []string{"--data", "/d", "--fail", "explode"}, wantErr: "unknown --fail mode"},
		{name: "fault without duration", args: []string{"--data", "/d", "--fail", "slow-drain"}, wantErr: "unknown --fail mode"},
		{name: "bad duration", args: []string{"--data", "/d", "--fail", "slow-open=soon"}, wantErr: "want a duration"},
		{name: "flag mode with argument", args: []string{"--data", "/d", "--fail", "seal=1"}, wantErr: "unknown --fail mode"},
		{name: "default build id", args: []string{"--data", "/d"}, check: func(c config) bool { return len(c.buildID) == 12 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(cfg) {
				t.Fatalf("config %+v, err %v", cfg, err)
			}
		})
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

// TestDefaultBuildID_isStable: the id hashes the executable, so the same
// binary reports the same id (different binaries differ by construction).
func TestDefaultBuildID_isStable(t *testing.T) {
	a, err := defaultBuildID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := defaultBuildID()
	if a != b || len(a) != 12 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("build ids %q, %q; want the same 12 hex digits", a, b)
	}
}
