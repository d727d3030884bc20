// Package testutil holds helpers shared by Courier's tests: where the shared
// test data lives, and checks for leaked goroutines and allocations.
package testutil

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// DataDir returns the shared test-data folder (COURIER_TESTDATA, default
// ../shared relative to the repository root). When it is missing the test is
// skipped with a loud message, or fails when CI=true, because CI must never
// pass by skipping the real-model tests.
func DataDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("COURIER_TESTDATA")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			tb.Fatalf("testutil: finding repository root: %v", err)
		}
		dir = filepath.Join(root, "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("testutil: test data missing at %s (set COURIER_TESTDATA): %v", dir, err)
		}
		tb.Skipf("testutil: !!! SKIPPING: test data missing at %s (set COURIER_TESTDATA) !!!", dir)
	}
	return dir
}

// Model returns the path of a model file in the shared test data, skipping or
// failing as DataDir does when it is absent.
func Model(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(DataDir(tb), "models", name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("testutil: model %s missing: %v", name, err)
		}
		tb.Skipf("testutil: !!! SKIPPING: model %s missing: %v !!!", name, err)
	}
	return p
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// BenchFile returns the path of a generated benchmark input named name in
// $COURIER_BENCH_DIR (made when missing, kept between runs) or a temporary
// folder, calling write to create it when it is not there yet. The file is
// written under another name and renamed into place, so a run that stops
// midway, or another process looking at the same folder, never finds a
// partial one.
func BenchFile(tb testing.TB, name string, write func(io.Writer) error) string {
	tb.Helper()
	dir := os.Getenv("COURIER_BENCH_DIR")
	if dir == "" {
		dir = tb.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	f, err := os.CreateTemp(dir, name+".part-*")
	if err != nil {
		tb.Fatal(err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name()) // never leave a half-written file for the next run
		tb.Fatalf("testutil: writing %s: %v", path, err)
	}
	return path
}
