//go:build linux

package compiler_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	goruntime "runtime"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// inNamespace runs fn on a thread in the named network namespace; sockets
// and links fn creates stay there.
func inNamespace(name string, fn func() error) error {
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
		// The thread stays locked and dies with the goroutine.
		return errors.Join(ferr, err)
	}
	goruntime.UnlockOSThread()
	return ferr
}

// echoServer listens in namespace ns on addr:port and echoes.
func echoServer(t *testing.T, ns string, addr netip.Addr, port int) {
	t.Helper()
	var l net.Listener
	if err := inNamespace(ns, func() (err error) {
		l, err = net.Listen("tcp4", netip.AddrPortFrom(addr, uint16(port)).String())
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

// echo connects from namespace ns to addr:port, sends a line and reads it
// back within timeout.
func echo(ns string, addr netip.Addr, port int, timeout time.Duration) error {
	var c net.Conn
	if err := inNamespace(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(addr, uint16(port)).String(), timeout)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, len(msg)))
	return err
}

// TestHostNetns runs real TCP through the host firewall. Three network
// namespaces: "node", whose eth0 carries the host programs; "peer" on the
// other end of that link; and "pod", routed behind the node. The policy lets
// the peer reach the node's SSH port only and lets the node send only to a
// documentation prefix, so the SSH replies pass by conntrack alone;
// connections from the peer to the pod, routed through the node's eth0, are
// not the host's and pass.
func TestHostNetns(t *testing.T) {
	testenv.RequireKernel(t)
	ip := testenv.RequireTool(t, "ip")
	run := func(args ...string) { t.Helper(); testenv.Run(t, ip, args...) }
	nodeNS, peerNS, podNS := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	x, y := byte(100+rand.IntN(100)), byte(rand.IntN(128)*2)
	a := func(c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{10, x, c, d}) }
	node, peer := a(y, 1), a(y, 2)
	podGW, pod := a(y+1, 1), a(y+1, 2)
	for _, ns := range []string{nodeNS, peerNS, podNS} {
		run("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
		run("-n", ns, "link", "set", "lo", "up")
	}
	run("netns", "exec", nodeNS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run("-n", nodeNS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", peerNS)
	run("-n", nodeNS, "link", "add", "lxc0", "type", "veth", "peer", "name", "eth0", "netns", podNS)
	for _, l := range []struct {
		ns, dev string
		addr    netip.Addr
	}{{nodeNS, "eth0", node}, {peerNS, "eth0", peer}, {nodeNS, "lxc0", podGW}, {podNS, "eth0", pod}} {
		run("-n", l.ns, "addr", "add", l.addr.String()+"/24", "dev", l.dev)
		run("-n", l.ns, "link", "set", l.dev, "up")
	}
	run("-n", peerNS, "route", "add", netip.PrefixFrom(pod, 24).Masked().String(), "via", node.String())
	run("-n", podNS, "route", "add", "default", "via", podGW.String())

	cue := fmt.Sprintf(`package ebpfc

cluster: {name: "test", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: node: {addresses: [%q], devices: ["eth0"], labels: role: "worker"}
clusterPolicies: ssh: {
	nodeSelector: matchLabels: role: "worker"
	ingress: [{fromCIDR: ["%s/32"], toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]}]
	egress: [{toCIDR: ["203.0.113.0/24"]}]
}
`, node, peer)
	cfg, err := load.LoadFS(fstest.MapFS{"c.cue": {Data: []byte(cue)}}, []string{"c.cue"})
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := runtime.ParseArtifacts(arts[0].Node, arts[0].Files)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := runtime.Load(ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	if err := inNamespace(nodeNS, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		for prog, typ := range map[string]ebpf.AttachType{"host_ingress": ebpf.AttachTCXIngress, "host_egress": ebpf.AttachTCXEgress} {
			l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: dp.Collection.Programs[prog], Attach: typ})
			if err != nil {
				return fmt.Errorf("attaching %s: %w", prog, err)
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	echoServer(t, nodeNS, node, 22)
	echoServer(t, nodeNS, node, 23)
	echoServer(t, peerNS, peer, 80)
	echoServer(t, podNS, pod, 23)
	const timeout = 400 * time.Millisecond
	for _, c := range []struct {
		what    string
		from    string
		to      netip.Addr
		port    int
		allowed bool
	}{
		{"peer to the node's SSH port (replies by conntrack)", peerNS, node, 22, true},
		{"peer to another port of the node", peerNS, node, 23, false},
		{"node to the peer: egress default deny", nodeNS, peer, 80, false},
		{"peer to the pod, routed through the node", peerNS, pod, 23, true},
		{"pod to the peer, routed through the node", podNS, peer, 80, true},
	} {
		err := echo(c.from, c.to, c.port, timeout)
		if (err == nil) != c.allowed {
			t.Errorf("%s: %v, want allowed=%v", c.what, err, c.allowed)
		}
	}
}
