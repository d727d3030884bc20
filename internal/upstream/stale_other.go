//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package upstream

import "net"

// stale cannot peek here: an idle connection the server closed is found
// when a request on it fails (the gateway places the request again).
func stale(net.Conn) bool { return false }
