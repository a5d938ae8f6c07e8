package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// update rewrites testdata/frames from the samples: go test -run
// TestFrames_golden -update ./internal/wire/
var update = flag.Bool("update", false, "rewrite the golden frames in testdata/frames")

const framesDir = "testdata/frames"

// frameFile names the golden frame of a message type.
func frameFile(t Type) string {
	return filepath.Join(framesDir, fmt.Sprintf("%02d-%s.bin", uint8(t), t))
}

// TestFrames_golden pins the wire encoding of every message type: a change
// here is a change to PROTOCOL.md. The files also seed the fuzz targets.
func TestFrames_golden(t *testing.T) {
	for _, m := range samples() {
		t.Run(m.Type().String(), func(t *testing.T) {
			frame, err := Encode(HelloFrameVersion, idFor(m), m)
			if err != nil {
				t.Fatal(err)
			}
			path := frameFile(m.Type())
			if *update {
				if err := os.WriteFile(path, frame, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(frame, golden) {
				t.Errorf("encoding of %s changed:\n got %x\nwant %x", m.Type(), frame, golden)
			}
		})
	}
}

// goldenFrames returns the contents of every golden frame file.
func goldenFrames(f *testing.F) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join(framesDir, "*.bin"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden frames in %s: %v", framesDir, err)
	}
	var frames [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		frames = append(frames, b)
	}
	return frames
}
