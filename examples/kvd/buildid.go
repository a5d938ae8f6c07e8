package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// defaultBuildID is a short hash of the running executable's content, so
// that two different binaries always report different build ids (and the
// same binary the same one). /proc/self/exe is the file this process runs,
// even if the path has since been replaced.
func defaultBuildID() (string, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("kvd: build id: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("kvd: build id: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)[:6]), nil
}
