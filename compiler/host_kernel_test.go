//go:build linux

package compiler_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/compiler/reference"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// hostKernel is the host cluster loaded into the kernel, node by node, with
// the reference evaluator of the same configuration.
type hostKernel struct {
	t     *testing.T
	cfg   *model.Config
	arts  map[string]*compiler.Artifacts
	colls map[string]*ebpf.Collection
	ref   *reference.Evaluator
}

func loadHostKernel(t *testing.T) *hostKernel {
	t.Helper()
	testenv.RequireKernel(t)
	cfg, arts := compileHostCluster(t)
	k := &hostKernel{t: t, cfg: cfg, arts: arts, colls: map[string]*ebpf.Collection{}, ref: reference.New(cfg)}
	for name, a := range arts {
		ra, err := runtime.ParseArtifacts(a.Node, a.Files)
		if err != nil {
			t.Fatal(err)
		}
		dp, err := runtime.Load(ra)
		if err != nil {
			t.Fatalf("node %s: kernel rejected the object: %v", name, err)
		}
		t.Cleanup(dp.Close)
		k.colls[name] = dp.Collection
	}
	return k
}

func (k *hostKernel) node(name string) *model.Node {
	for _, n := range k.cfg.Nodes {
		if n.Name == name {
			return n
		}
	}
	k.t.Fatalf("no node %s", name)
	return nil
}

// hostProgram is the program that judges direction dir at a node's host.
func hostProgram(dir reference.Direction) string {
	if dir == reference.Egress {
		return "host_egress"
	}
	return "host_ingress"
}

// counters returns the per-CPU packet counts of a statistics array, summed,
// by index.
func (k *hostKernel) counters(node, name string) []uint64 {
	k.t.Helper()
	out, err := packetCounts(k.colls[node].Maps[name])
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// conntrackEntries counts the node's conntrack entries.
func (k *hostKernel) conntrackEntries(node string) int {
	k.t.Helper()
	n := 0
	var key, val []byte
	it := k.colls[node].Maps["conntrack"].Iterate()
	for it.Next(&key, &val) {
		n++
	}
	if err := it.Err(); err != nil {
		k.t.Fatal(err)
	}
	return n
}

// kernelVerdict is what the kernel did with a frame: whether it passed, the
// rule cookie counted (0 for none) and the drop reason counted ("" for none).
type kernelVerdict struct {
	pass   bool
	cookie uint32
	reason string
}

// run sends frame through the host program of node in direction dir.
func (k *hostKernel) run(node string, dir reference.Direction, frame []byte) kernelVerdict {
	k.t.Helper()
	prog := k.colls[node].Programs[hostProgram(dir)]
	if prog == nil {
		k.t.Fatalf("node %s has no program %s", node, hostProgram(dir))
	}
	rules, drops := k.counters(node, "rule_stats"), k.counters(node, "drop_stats")
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		k.t.Fatalf("%s: %v", hostProgram(dir), err)
	}
	v := kernelVerdict{pass: ret == 0}
	for i, n := range k.counters(node, "rule_stats") {
		if n != rules[i] {
			v.cookie = uint32(i)
		}
	}
	reasons := k.arts[node].Lowered.DropReasons
	for i, n := range k.counters(node, "drop_stats") {
		if n != drops[i] {
			v.reason = reasons[i]
		}
	}
	return v
}

// expected is what the reference's verdict means for the kernel's counters:
// the cookie of the deciding rule or default, and the drop reason.
func (k *hostKernel) expected(node string, v reference.Verdict) kernelVerdict {
	out := kernelVerdict{pass: v.Allowed}
	d := v.Decider
	for _, c := range k.arts[node].Manifest.Cookies {
		switch {
		case d.Kind == reference.KindAllow && c.Kind == "allow",
			d.Kind == reference.KindDeny && c.Kind == "deny":
			if c.Policy == d.Policy && c.Rule == d.Rule && c.Direction == d.Direction.String() {
				out.cookie = c.ID
			}
		case d.Kind == reference.KindDefaultDeny && c.Kind == "default-deny":
			if c.Endpoint == d.Subject && c.Direction == d.Direction.String() {
				out.cookie = c.ID
			}
		}
	}
	switch {
	case d.Kind == reference.KindMalformed:
		out.reason = "malformed packet"
	case d.Kind == reference.KindFragment:
		out.reason = "fragment without its first fragment"
	case !v.Allowed:
		out.reason = "policy denied"
	}
	return out
}

// hostFrame builds an Ethernet/IPv4 frame: TCP (a SYN), UDP, or ICMP (type
// icmpType with echo identifier sport).
func hostFrame(t *testing.T, proto string, src, dst netip.Addr, sport, dport uint16, icmpType uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	var l4 gopacket.SerializableLayer
	switch proto {
	case "tcp":
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	case "udp":
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	case "icmp":
		ip.Protocol = layers.IPProtocolICMPv4
		l4 = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(icmpType, 0), Id: sport}
	default:
		t.Fatalf("protocol %s", proto)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload("host")); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// hostProbe is one packet at a node's host.
type hostProbe struct {
	node     string
	dir      reference.Direction
	proto    string
	src, dst string
	dport    uint16
	icmpType uint8
}

func (p hostProbe) String() string {
	return fmt.Sprintf("%s %s %s %s > %s:%d", p.node, p.dir, p.proto, p.src, p.dst, p.dport)
}

// hostProbes crosses peers, host (and other) addresses, protocols and
// ports. Ingress packets come from peers of every class to both of
// worker-1's addresses, to an endpoint on the node and to an address
// routed through it; egress packets leave from the host's addresses and
// from the endpoint.
func hostProbes() []hostProbe {
	l4 := []struct {
		proto    string
		port     uint16
		icmpType uint8
	}{
		{"tcp", 22, 0}, {"tcp", 23, 0}, {"tcp", 10250, 0}, {"tcp", 9100, 0}, {"udp", 8472, 0},
		{"udp", 53, 0}, {"tcp", 443, 0}, {"icmp", 0, 8}, {"icmp", 0, 13},
	}
	peers := []string{
		"198.51.100.7",   // world, inside the SSH prefix
		"198.51.100.66",  // world, denied outright
		"198.51.100.200", // world, in the except
		"8.8.8.8",        // world
		"192.168.1.2",    // remote node
		"10.0.1.5",       // endpoint on the node (web)
		"10.0.2.7",       // endpoint on another node (prometheus)
		"10.0.99.9",      // unmanaged pod address
	}
	var out []hostProbe
	for _, x := range l4 {
		for _, peer := range peers {
			for _, dst := range []string{"192.168.1.1", "192.168.2.1", "10.0.1.5", "203.0.113.9"} {
				if peer == dst {
					continue
				}
				out = append(out, hostProbe{"worker-1", reference.Ingress, x.proto, peer, dst, x.port, x.icmpType})
			}
			for _, src := range []string{"192.168.1.1", "192.168.2.1", "10.0.1.5"} {
				if peer == src {
					continue
				}
				out = append(out, hostProbe{"worker-1", reference.Egress, x.proto, src, peer, x.port, x.icmpType})
			}
		}
	}
	return out
}

// TestHostKernel holds the host programs, run in the kernel, to the
// reference evaluator's HostPacket, packet by packet: the verdict, the rule
// cookie counted and the drop reason. Every probe is the first packet of
// its own connection (source ports and echo identifiers are unique), so
// conntrack plays no part.
func TestHostKernel(t *testing.T) {
	k := loadHostKernel(t)
	kinds := map[reference.Kind]int{}
	disagreements := 0
	for i, p := range hostProbes() {
		sport := uint16(20000 + i)
		frame := hostFrame(t, p.proto, netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst), sport, p.dport, p.icmpType)
		ref := k.ref.HostPacket(k.node(p.node), p.dir, frame)
		kinds[ref.Decider.Kind]++
		got := k.run(p.node, p.dir, frame)
		if want := k.expected(p.node, ref); got != want {
			disagreements++
			t.Errorf("%s: kernel %+v, reference %+v (%s)", p, got, want, ref)
		}
	}
	// The probes must reach every way a host decides.
	for _, kind := range []reference.Kind{reference.KindAllow, reference.KindDeny, reference.KindDefaultDeny, reference.KindNotHost} {
		if kinds[kind] == 0 {
			t.Errorf("no probe was decided by %s", kind)
		}
	}
	t.Logf("%d probes, %d disagreements; reference deciders: %v", len(hostProbes()), disagreements, kinds)
}

// Replies to connections the host's policy allowed pass in the other
// direction, where policy would deny them; packets that merely look like
// replies do not.
func TestHostKernelReplies(t *testing.T) {
	k := loadHostKernel(t)
	a := netip.MustParseAddr
	host, ssh, world := a("192.168.1.1"), a("198.51.100.7"), a("8.8.8.8")
	in, out := reference.Ingress, reference.Egress
	steps := []struct {
		what      string
		dir       reference.Direction
		frame     []byte
		refAllows bool // what policy alone says
		pass      bool
	}{
		// SSH in: allowed, tracked; the server's reply leaves through an
		// egress that allows only DNS and HTTPS to the world.
		{"ssh SYN", in, hostFrame(t, "tcp", ssh, host, 40000, 22, 0), true, true},
		{"ssh SYN-ACK", out, hostFrame(t, "tcp", host, ssh, 22, 40000, 0), false, true},
		{"ssh reply to another port", out, hostFrame(t, "tcp", host, ssh, 22, 40001, 0), false, false},
		// HTTPS out: allowed, tracked; the answer comes in through an
		// ingress that allows nothing from 8.8.8.8 on that port.
		{"https SYN", out, hostFrame(t, "tcp", host, world, 50000, 443, 0), true, true},
		{"https SYN-ACK", in, hostFrame(t, "tcp", world, host, 443, 50000, 0), false, true},
		{"unsolicited from 443", in, hostFrame(t, "tcp", world, host, 443, 50001, 0), false, false},
		// DNS out over UDP, and its answer.
		{"dns query", out, hostFrame(t, "udp", host, world, 50002, 53, 0), true, true},
		{"dns answer", in, hostFrame(t, "udp", world, host, 53, 50002, 0), false, true},
		// Ping in; the echo reply goes out.
		{"echo request", in, hostFrame(t, "icmp", world, host, 77, 0, 8), true, true},
		{"echo reply", out, hostFrame(t, "icmp", host, world, 77, 0, 0), false, true},
		{"echo reply with another id", out, hostFrame(t, "icmp", host, world, 78, 0, 0), false, false},
	}
	for _, s := range steps {
		if ref := k.ref.HostPacket(k.node("worker-1"), s.dir, s.frame); ref.Allowed != s.refAllows {
			t.Fatalf("%s: the reference says %s, want allowed=%v: the step would not test conntrack", s.what, ref, s.refAllows)
		}
		if got := k.run("worker-1", s.dir, s.frame); got.pass != s.pass {
			t.Errorf("%s: kernel passed=%v, want %v (%+v)", s.what, got.pass, s.pass, got)
		}
	}
}

// Packets routed through the node's devices — to and from its endpoints,
// or through the node — are not the host's: they pass the host programs
// unjudged, uncounted and untracked, even when their headers past the IP
// header are broken, while the same packets to the host are dropped.
func TestHostKernelForwarded(t *testing.T) {
	k := loadHostKernel(t)
	a := netip.MustParseAddr
	cut := func(b []byte) []byte {
		// 10 bytes of TCP header, with an IP total length that agrees.
		binary.BigEndian.PutUint16(b[14+2:], 20+10)
		b[14+10], b[14+11] = 0, 0 // the checksum is not checked
		return b[:14+20+10]
	}
	ct := k.conntrackEntries("worker-1")
	for _, p := range []struct {
		what string
		dir  reference.Direction
		src  string
		dst  string
		cut  bool
		pass bool
	}{
		{"world to web, denied port for the host", reference.Ingress, "8.8.8.8", "10.0.1.5", false, true},
		{"world through the node", reference.Ingress, "8.8.8.8", "203.0.113.9", false, true},
		{"web to the world", reference.Egress, "10.0.1.5", "8.8.8.8", false, true},
		{"cut TCP header to web", reference.Ingress, "8.8.8.8", "10.0.1.5", true, true},
		{"cut TCP header to the host", reference.Ingress, "8.8.8.8", "192.168.1.1", true, false},
		{"cut TCP header from the host", reference.Egress, "192.168.1.1", "8.8.8.8", true, false},
	} {
		frame := hostFrame(t, "tcp", a(p.src), a(p.dst), 30000, 23, 0)
		if p.cut {
			frame = cut(frame)
		}
		ref := k.ref.HostPacket(k.node("worker-1"), p.dir, frame)
		got := k.run("worker-1", p.dir, frame)
		want := k.expected("worker-1", ref)
		if ref.Allowed != p.pass || got != want {
			t.Errorf("%s: kernel %+v, reference %s, want pass=%v", p.what, got, ref, p.pass)
		}
	}
	if n := k.conntrackEntries("worker-1"); n != ct {
		t.Errorf("conntrack went from %d to %d entries: routed packets were tracked", ct, n)
	}
}

// A node the nodeSelector does not select has no host programs, and the
// reference says its host is open; a selected node without endpoints has
// them.
func TestHostKernelUnselected(t *testing.T) {
	k := loadHostKernel(t)
	for _, name := range []string{"host_ingress", "host_egress"} {
		if k.colls["infra-1"].Programs[name] != nil {
			t.Errorf("infra-1 has %s", name)
		}
		if k.colls["worker-2"].Programs[name] == nil {
			t.Errorf("worker-2 has no %s", name)
		}
	}
	frame := hostFrame(t, "tcp", netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("192.168.1.9"), 40000, 23, 0)
	if v := k.ref.HostPacket(k.node("infra-1"), reference.Ingress, frame); !v.Allowed || v.Decider.Kind != reference.KindOpen {
		t.Errorf("reference at infra-1: %s, want open", v)
	}
	frame = hostFrame(t, "tcp", netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("192.168.1.2"), 40000, 23, 0)
	ref := k.ref.HostPacket(k.node("worker-2"), reference.Ingress, frame)
	if got, want := k.run("worker-2", reference.Ingress, frame), k.expected("worker-2", ref); ref.Allowed || got != want {
		t.Errorf("worker-2: kernel %+v, reference %s", got, ref)
	}
}
