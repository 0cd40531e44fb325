package runtime

// The control socket speaks newline-delimited JSON: the client writes one
// Request, the daemon answers with one Response (apply, status) or with a
// stream of Responses each carrying one Event (monitor) until the client
// hangs up.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultSocket is where ebpfd listens unless told otherwise.
const DefaultSocket = "/run/ebpfc/ebpfd.sock"

// Request is one request on the control socket.
type Request struct {
	// Op is "apply", "status" or "monitor".
	Op string `json:"op"`
	// Path is what apply applies: a configuration directory (compiled by
	// the daemon for its node) or compiled artifacts (OUT or OUT/NODE). The
	// daemon reads it, so it must be an absolute path on the daemon's host.
	Path string `json:"path,omitempty"`
	// Filter selects the events monitor streams.
	Filter EventFilter `json:"filter,omitzero"`
}

// Response is the daemon's answer. Exactly one of the payload fields is set
// when OK is true; Error (and, for configuration errors, Errors with one
// file:line:col message each) when it is false.
type Response struct {
	OK     bool         `json:"ok"`
	Error  string       `json:"error,omitempty"`
	Errors []string     `json:"errors,omitempty"`
	Apply  *ApplyResult `json:"apply,omitempty"`
	Status *Status      `json:"status,omitempty"`
	Event  *Event       `json:"event,omitempty"`
}

// ApplyResult says what one apply changed.
type ApplyResult struct {
	Generation uint64 `json:"generation"`
	Source     string `json:"source"`
	// Unchanged is true when the kernel already ran exactly this datapath.
	Unchanged bool `json:"unchanged"`
	// Incremental is true when the daemon computed the change from the
	// running configuration instead of compiling the node (docs/ebpfd.md,
	// "The incremental path").
	Incremental bool `json:"incremental,omitempty"`
	// ConfigTime is the time to load and validate a configuration, and
	// CompileTime the time to compile it (the node, or on the incremental
	// path the new programs); both are zero when artifacts were applied.
	// ComputeTime is, on the incremental path, the time to find what
	// changed and compute the new map entries and programs' IR.
	ConfigTime  time.Duration `json:"configTime,omitempty"`
	ComputeTime time.Duration `json:"computeTime,omitempty"`
	CompileTime time.Duration `json:"compileTime"`
	// LoadTime is the time to load programs and create maps, SyncTime the
	// time of the map, tail-call slot and attachment operations, and
	// KernelTime (incremental path) both.
	LoadTime   time.Duration `json:"loadTime"`
	SyncTime   time.Duration `json:"syncTime"`
	KernelTime time.Duration `json:"kernelTime,omitempty"`
	TotalTime  time.Duration `json:"totalTime"`
	// Loaded lists the programs loaded into the kernel by this apply (new
	// or changed code, or using a recreated map); Replaced those among them
	// that took over a running attachment or tail-call slot.
	Loaded   []string `json:"loaded,omitempty"`
	Replaced []string `json:"replaced,omitempty"`
	Attached []string `json:"attached,omitempty"`
	Detached []string `json:"detached,omitempty"`
	// Pending lists attachments whose device does not exist yet; they are
	// retried on every poll.
	Pending []string    `json:"pending,omitempty"`
	Maps    []MapChange `json:"maps,omitempty"`
}

// MapChange is what an apply did to one map.
type MapChange struct {
	Name    string `json:"name"`
	Added   int    `json:"added"`
	Updated int    `json:"updated"`
	Deleted int    `json:"deleted"`
	// Ops counts the map syscalls issued (a batch counts once).
	Ops int `json:"ops"`
	// Created is true when the map was created by this apply (first load or
	// a layout change) rather than kept.
	Created bool `json:"created,omitempty"`
	Removed bool `json:"removed,omitempty"`
}

// Changed reports whether the map's contents or existence changed.
func (c MapChange) Changed() bool {
	return c.Added+c.Updated+c.Deleted > 0 || c.Created || c.Removed
}

// Status is the daemon's view of its node.
type Status struct {
	Node       string    `json:"node"`
	PinDir     string    `json:"pinDir"`
	Generation uint64    `json:"generation"`
	Source     string    `json:"source,omitempty"`
	Healthy    bool      `json:"healthy"`
	LastApply  time.Time `json:"lastApply,omitzero"`
	// LastError is the error of the latest apply that failed after the last
	// good one; the datapath of Generation keeps running meanwhile.
	LastError *ApplyError `json:"lastError,omitempty"`
	// LastResult is what the last successful apply changed.
	LastResult *ApplyResult    `json:"lastResult,omitempty"`
	TCMode     string          `json:"tcMode"`
	Events     string          `json:"events"`
	Programs   []ProgramStatus `json:"programs"`
	Maps       []MapStatus     `json:"maps"`
}

// ApplyError is a failed apply.
type ApplyError struct {
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`
	Message string    `json:"message"`
	Errors  []string  `json:"errors,omitempty"`
}

// ProgramStatus is one program of the running datapath.
type ProgramStatus struct {
	Name         string         `json:"name"`
	SHA256       string         `json:"sha256"`
	Tag          string         `json:"tag"`
	TailCallSlot *int           `json:"tailCallSlot,omitempty"`
	Attach       []AttachStatus `json:"attach,omitempty"`
}

// AttachStatus is one attachment of a program.
type AttachStatus struct {
	Hook      string `json:"hook"`
	Target    string `json:"target"` // device or cgroup
	Direction string `json:"direction,omitempty"`
	Mode      string `json:"mode"` // tcx, tc-legacy, xdp-native, xdp-generic, cgroup
	Pending   bool   `json:"pending,omitempty"`
}

// MapStatus is one map of the running datapath. Entries is -1 where
// counting makes no sense (arrays, ring buffers).
type MapStatus struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Entries    int    `json:"entries"`
	MaxEntries uint32 `json:"maxEntries"`
	Sync       bool   `json:"sync"`
}

// Client talks to a daemon's control socket.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to ebpfd at %s: %w (is ebpfd running, and are you root?)", path, err)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 1<<16)}, nil
}

// Close hangs up.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) send(req Request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = c.conn.Write(append(b, '\n'))
	return err
}

func (c *Client) receive() (*Response, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil, fmt.Errorf("ebpfd closed the connection (was the request refused? see its log)")
		}
		return nil, err
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("bad response from ebpfd: %w", err)
	}
	return &resp, nil
}

// RequestError is a request the daemon answered with an error.
type RequestError struct {
	Message string
	Errors  []string // file:line:col messages, for configuration errors
}

func (e *RequestError) Error() string { return e.Message }

func (c *Client) call(req Request) (*Response, error) {
	if err := c.send(req); err != nil {
		return nil, err
	}
	resp, err := c.receive()
	if err != nil {
		return nil, err
	}
	if !resp.OK {
		return nil, &RequestError{Message: resp.Error, Errors: resp.Errors}
	}
	return resp, nil
}

// Apply asks the daemon to apply path (see Request.Path).
func (c *Client) Apply(path string) (*ApplyResult, error) {
	resp, err := c.call(Request{Op: "apply", Path: path})
	if err != nil {
		return nil, err
	}
	if resp.Apply == nil {
		return nil, fmt.Errorf("ebpfd answered apply without a result")
	}
	return resp.Apply, nil
}

// Status asks for the daemon's status.
func (c *Client) Status() (*Status, error) {
	resp, err := c.call(Request{Op: "status"})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("ebpfd answered status without a status")
	}
	return resp.Status, nil
}

// Monitor streams events that pass filter to fn until fn returns false,
// the connection ends or an error occurs.
func (c *Client) Monitor(filter EventFilter, fn func(Event) bool) error {
	if err := c.send(Request{Op: "monitor", Filter: filter}); err != nil {
		return err
	}
	for {
		resp, err := c.receive()
		if err != nil {
			return err
		}
		if !resp.OK {
			return &RequestError{Message: resp.Error, Errors: resp.Errors}
		}
		if resp.Event == nil {
			continue // the daemon's acknowledgement
		}
		if !fn(*resp.Event) {
			return nil
		}
	}
}
