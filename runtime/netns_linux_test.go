//go:build linux

package runtime_test

// A test topology for the daemon: network namespaces act as endpoints, each
// joined by a veth pair to the host, whose host ends (the endpoints'
// interfaces, where the tc programs attach) are ports of one bridge. The
// bridge forwards at layer 2, so nothing on the host (IP forwarding,
// routes) changes.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

type testEndpoint struct {
	name string // endpoint name in the configuration (namespace "default")
	ns   string // network namespace
	host string // host-side veth: the endpoint's interface
	addr netip.Addr
}

type topology struct {
	bridge string
	subnet netip.Prefix
	eps    []*testEndpoint
}

// newTopology creates one namespace per name, on a random /24 of 10.0.0.0/8
// so that parallel runs do not collide. Everything is removed when the test
// ends.
func newTopology(t testing.TB, names ...string) *topology {
	t.Helper()
	testenv.RequireKernel(t)
	ip := testenv.RequireTool(t, "ip")
	run := func(args ...string) { t.Helper(); testenv.Run(t, ip, args...) }
	br := testenv.UniqueName("ebr")
	run("link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command(ip, "link", "del", br).Run() })
	setSysctl(t, "net/ipv6/conf/"+br+"/disable_ipv6", "1")
	run("link", "set", br, "up")
	topo := &topology{bridge: br, subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), 0}), 24)}
	for i, name := range names {
		ep := &testEndpoint{name: name, ns: testenv.NewNetns(t), host: testenv.UniqueName("lxc")}
		b := topo.subnet.Addr().As4()
		b[3] = byte(10 + i)
		ep.addr = netip.AddrFrom4(b)
		run("link", "add", ep.host, "type", "veth", "peer", "name", "eth0", "netns", ep.ns)
		t.Cleanup(func() { exec.Command(ip, "link", "del", ep.host).Run() })
		setSysctl(t, "net/ipv6/conf/"+ep.host+"/disable_ipv6", "1")
		run("link", "set", ep.host, "master", br)
		run("link", "set", ep.host, "up")
		run("netns", "exec", ep.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
		run("-n", ep.ns, "addr", "add", ep.addr.String()+"/24", "dev", "eth0")
		run("-n", ep.ns, "link", "set", "eth0", "up")
		run("-n", ep.ns, "link", "set", "lo", "up")
		topo.eps = append(topo.eps, ep)
	}
	return topo
}

func setSysctl(t testing.TB, key, val string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(val), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inNetns runs fn on a thread in the named network namespace. Sockets fn
// creates stay in that namespace and may be used from any goroutine.
func inNetns(name string, fn func() error) error {
	goruntime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		goruntime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		goruntime.UnlockOSThread()
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		goruntime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with the goroutine instead of
		// running other goroutines in the wrong namespace.
		return errors.Join(ferr, err)
	}
	goruntime.UnlockOSThread()
	return ferr
}

// tcpServer accepts connections in ep's namespace on port and echoes.
func tcpServer(t testing.TB, ep *testEndpoint, port int) {
	t.Helper()
	var l net.Listener
	if err := inNetns(ep.ns, func() (err error) {
		l, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", ep.addr, port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// tcpEcho connects from one endpoint to another's port, sends a line and
// reads it back; it returns an error when the connection or the echo fails
// within timeout.
func tcpEcho(from, to *testEndpoint, port int, timeout time.Duration) error {
	var c net.Conn
	err := inNetns(from.ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", to.addr, port), timeout)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	return nil
}

// expectTCP checks that a connection succeeds (allowed) or times out.
func expectTCP(t *testing.T, from, to *testEndpoint, port int, allowed bool) {
	t.Helper()
	err := tcpEcho(from, to, port, 400*time.Millisecond)
	switch {
	case allowed && err != nil:
		t.Errorf("TCP %s -> %s:%d: %v, want it allowed", from.name, to.name, port, err)
	case !allowed && err == nil:
		t.Errorf("TCP %s -> %s:%d connected, want it denied", from.name, to.name, port)
	}
}

// udpStream sends numbered datagrams from one endpoint to another every
// interval and counts what arrives, to tell whether anything was lost while
// the daemon restarted or upgraded.
type udpStream struct {
	started  time.Time
	ns       string // the receiver's network namespace
	sent     atomic.Uint64
	received atomic.Uint64
	mu       sync.Mutex
	seen     map[uint64]bool
	stop     chan struct{}
	done     sync.WaitGroup
	conn     *net.UDPConn
	recv     *net.UDPConn
}

func startUDPStream(t testing.TB, from, to *testEndpoint, port int, interval time.Duration) *udpStream {
	t.Helper()
	s := &udpStream{seen: make(map[uint64]bool), stop: make(chan struct{}), started: time.Now()}
	if err := inNetns(to.ns, func() (err error) {
		s.recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: to.addr.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		// A large receive buffer, so that a receiver that falls behind for a
		// moment (two CPUs, shared with the daemon) does not lose datagrams
		// that the datapath passed.
		raw, err := s.recv.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		})
		return serr
	}); err != nil {
		t.Fatal(err)
	}
	s.ns = to.ns
	if err := inNetns(from.ns, func() (err error) {
		s.conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: to.addr.AsSlice(), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		buf := make([]byte, 64)
		for {
			n, err := s.recv.Read(buf)
			if err != nil {
				return
			}
			if n >= 8 {
				seq := binary.BigEndian.Uint64(buf)
				s.mu.Lock()
				if !s.seen[seq] {
					s.seen[seq] = true
					s.received.Add(1)
				}
				s.mu.Unlock()
			}
		}
	}()
	go func() {
		defer s.done.Done()
		buf := make([]byte, 8)
		next := time.Now()
		for seq := uint64(0); ; seq++ {
			select {
			case <-s.stop:
				return
			default:
			}
			// Sleep to the next send time; below the timer's resolution,
			// this sends as fast as the sleeps allow.
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			binary.BigEndian.PutUint64(buf, seq)
			if _, err := s.conn.Write(buf); err == nil {
				s.sent.Add(1)
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// waitFlowing waits until at least n more datagrams have arrived.
func (s *udpStream) waitFlowing(t testing.TB, n uint64) {
	t.Helper()
	start := s.received.Load()
	deadline := time.Now().Add(5 * time.Second)
	for s.received.Load() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("UDP stream stalled: %d received of %d sent", s.received.Load(), s.sent.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish stops sending, lets the last datagrams arrive and returns how many
// were sent and lost.
func (s *udpStream) finish() (sent, lost uint64) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	sent = s.sent.Load()
	deadline := time.Now().Add(time.Second)
	for s.received.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return sent, sent - min(sent, s.received.Load())
}

func (s *udpStream) close() {
	s.finish()
	s.conn.Close()
	s.recv.Close()
	s.done.Wait()
}

// writeConfig writes the configuration of a topology: every endpoint in
// namespace "default" on node-a, plus the given policies (CUE).
func writeConfig(t testing.TB, dir string, topo *topology, policies string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "package ebpfc\n\ncluster: {name: \"e2e\", podCIDRs: [%q], serviceCIDRs: [\"10.96.0.0/12\"]}\n", topo.subnet.String())
	b.WriteString("nodes: \"node-a\": {addresses: [\"192.0.2.1\"]}\n")
	for _, ep := range topo.eps {
		fmt.Fprintf(&b, "endpoints: default: %q: {node: \"node-a\", interface: %q, addresses: [%q], labels: app: %q}\n", ep.name, ep.host, ep.addr.String(), ep.name)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.cue"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+policies)
}

// writeFile replaces a file in one rename, as an editor or a deployment
// would, so the watcher never sees it half-written.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startDaemon starts an in-process daemon for node-a with its own pin
// directory; everything it pins is removed when the test ends.
func startDaemon(t *testing.T, opts runtime.Options) *runtime.Daemon {
	t.Helper()
	opts.Node = "node-a"
	if opts.PinDir == "" {
		opts.PinDir = filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
		pinDir := opts.PinDir
		t.Cleanup(func() {
			if err := runtime.Cleanup(pinDir, nil); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	d, err := runtime.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// waitGeneration waits until the daemon runs generation gen or later, or
// has recorded an error newer than since.
func waitStatus(t *testing.T, d *runtime.Daemon, what string, cond func(*runtime.Status) bool) *runtime.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := d.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status: generation %d, last error %+v", what, st.Generation, st.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcxPrograms returns the names of the programs attached to dev through
// TCX, in both directions.
func tcxPrograms(t testing.TB, dev string) []string {
	t.Helper()
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, typ := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: typ})
		if err != nil {
			t.Fatal(err)
		}
		for _, ap := range res.Programs {
			p, err := ebpf.NewProgramFromID(ap.ID)
			if err != nil {
				t.Fatal(err)
			}
			info, err := p.Info()
			p.Close()
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, info.Name)
		}
	}
	return names
}

// receiveBufferErrors returns how many datagrams the receiver's namespace
// dropped for lack of socket buffer (Udp RcvbufErrors), which is loss that
// happened after the datapath.
func (s *udpStream) receiveBufferErrors(t testing.TB) int {
	t.Helper()
	var snmp []byte
	if err := inNetns(s.ns, func() (err error) {
		snmp, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(snmp), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	return 0
}
