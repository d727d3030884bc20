package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
)

// pipeListener hands out the server ends of net.Pipe pairs. Its queue
// stands for the kernel's accept backlog: a dial does not wait for Accept.
// Accept blocks on channels, so inside a synctest bubble a server waiting
// for a connection (or for a free slot) is durably blocked, and
// synctest.Wait proves it will not accept anything more by itself.
type pipeListener struct {
	backlog chan net.Conn
	done    chan struct{}
	once    sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{backlog: make(chan net.Conn, 4), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial queues a connection and returns its client end.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.backlog <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// get sends GET / on c and returns the answer's status or the error.
func get(c net.Conn) error {
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestListenerCapsOpenConnections: with MaxConns 2, two open connections
// keep a third in the backlog, unserved, until one closes. synctest.Wait
// stands where a pause would: it returns once the server can make no
// progress by itself, so "not served" is proved, not waited for.
func TestListenerCapsOpenConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(Listener(Config{MaxConns: 2}, ln)) }()
		var clients []net.Conn
		defer func() { // also when the test fails: a bubble must end its goroutines
			for _, c := range clients {
				c.Close()
			}
			srv.Close()
			<-served
		}()
		var held []net.Conn
		for range 2 {
			c := ln.dial()
			clients = append(clients, c)
			if err := get(c); err != nil {
				t.Fatalf("held connection: %v", err)
			}
			held = append(held, c)
		}
		third := ln.dial()
		clients = append(clients, third)
		got := make(chan error, 1)
		go func() { got <- get(third) }()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("third connection served while two were open (%v)", err)
		default:
		}
		if n := len(ln.backlog); n != 1 {
			t.Fatalf("backlog holds %d connections, want the third", n)
		}
		held[0].Close()
		synctest.Wait()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("third connection not served after one closed")
		}
	})
}
