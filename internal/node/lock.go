package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFileName is the file under --data-dir whose exclusive flock marks the
// folder as in use; it holds the owner's pid.
const lockFileName = "courier.lock"

// ErrDataDirInUse reports a --data-dir already held by another process.
var ErrDataDirInUse = errors.New("data dir in use")

// dirLock is an exclusive advisory lock on a data folder, held for the
// process's life (the kernel drops it when the process dies, SIGKILL
// included, so a crash never leaves a stale lock).
type dirLock struct{ f *os.File }

// lockDataDir takes the exclusive lock on dir, or fails at once with
// "data dir DIR in use by pid N" when another process holds it: two
// servers on one JetStream store would corrupt it.
func lockDataDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: data dir lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("node: data dir lock %s: %w", path, err)
		}
		owner := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				owner = "pid " + strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("node: %w by %s: %s", ErrDataDirInUse, owner, dir)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("node: data dir lock: %w", err)
		}
	}
	return &dirLock{f: f}, nil
}

// release drops the lock. The pid stays in the file; only the flock counts.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}
