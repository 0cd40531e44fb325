//go:build linux

package runtime

// The daemon's side of the control socket. Only root may talk to it: the
// socket is 0600 in a 0700 directory owned by root, and every connection's
// peer credentials are checked as well.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// listenControl creates the control socket at path.
func listenControl(path string) (net.Listener, error) {
	// A directory ebpfd creates is root's, 0700. One that exists is left
	// as it is (it may be shared, like /run); the socket itself is 0600
	// and every peer's credentials are checked.
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another ebpfd is listening there", path)
	}
	os.Remove(path) // a stale socket of a daemon that is gone
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Chown(path, 0, 0); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

func (d *Daemon) serve() {
	defer d.wg.Done()
	for {
		c, err := d.listener.Accept()
		if err != nil {
			select {
			case <-d.stop:
				return
			default:
			}
			d.log.Error("control socket", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer c.Close()
			d.handle(c)
		}()
	}
}

func (d *Daemon) handle(c net.Conn) {
	// Read the request before answering, so that a refused client gets the
	// refusal rather than a broken pipe.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(c, 1<<16)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	uid, err := peerUID(c)
	if err != nil || uid != 0 {
		d.log.Warn("control socket: refusing a connection not from root", "uid", uid, "err", err)
		writeResponse(c, Response{Error: "ebpfd accepts requests from root only"})
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		writeResponse(c, Response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Op {
	case "status":
		writeResponse(c, Response{OK: true, Status: d.Status()})
	case "apply":
		if !filepath.IsAbs(req.Path) {
			writeResponse(c, Response{Error: fmt.Sprintf("apply: path %q must be absolute", req.Path)})
			return
		}
		d.log.Info("apply requested", "path", req.Path)
		res, err := d.Apply(req.Path)
		if err != nil {
			resp := Response{Error: err.Error()}
			var ce *ConfigError
			if errors.As(err, &ce) {
				resp.Error = fmt.Sprintf("%d error(s) in the configuration; nothing was changed", len(ce.Errors))
				resp.Errors = ce.Errors
			}
			writeResponse(c, resp)
			return
		}
		writeResponse(c, Response{OK: true, Apply: res})
	case "monitor":
		if err := req.Filter.Check(); err != nil {
			writeResponse(c, Response{Error: err.Error()})
			return
		}
		ch, cancel := d.Subscribe(req.Filter)
		defer cancel()
		if writeResponse(c, Response{OK: true}) != nil {
			return
		}
		// The client hangs up to stop: notice it while waiting for events.
		gone := make(chan struct{})
		go func() {
			r.ReadByte()
			close(gone)
		}()
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if writeResponse(c, Response{OK: true, Event: &ev}) != nil {
					return
				}
			case <-gone:
				return
			case <-d.stop:
				return
			}
		}
	default:
		writeResponse(c, Response{Error: fmt.Sprintf("unknown op %q (want apply, status or monitor)", req.Op)})
	}
}

func writeResponse(c net.Conn, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write(append(b, '\n'))
	return err
}
