//go:build linux || darwin || freebsd || netbsd || openbsd

package upstream

import (
	"net"
	"syscall"
)

// stale reports whether an idle keep-alive connection can no longer carry
// a request: the server closed it (or sent something unasked), seen by a
// peek that does not wait. Without it, a request written on a connection
// the server had closed would fail as a broken answer.
func stale(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var (
		buf  [1]byte
		rerr error
	)
	if err := rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return true
	}
	// Open and quiet only when there is nothing to read yet: a byte is
	// unasked, no error is the server's close, another error a reset.
	return rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK
}
