package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrPullRunning is returned when another pull of the same model holds its
// folder: two writers of one .partial file would corrupt it.
var ErrPullRunning = errors.New("store: another pull of this model is running")

// lockName is the lock file in a model's folder, held while pulling.
const lockName = ".pull.lock"

// lockPull takes the model folder's pull lock (flock, released when the
// process ends, however it ends) and returns its release.
func lockPull(dir, name string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrPullRunning, name)
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
