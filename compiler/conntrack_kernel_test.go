//go:build linux

package compiler_test

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// ctCluster has web (ingress allows client on TCP 80 and UDP 53; egress
// only to a documentation prefix, so replies must come through conntrack),
// api (ingress enforced and empty; egress open, so its own connections
// are tracked by an open program) and client (no policy at all).
const ctCluster = `package ebpfc

cluster: {name: "test", podCIDRs: ["10.0.0.0/16", "fd00::/64"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"], devices: ["eth0"]}
endpoints: default: {
	web:    {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.5", "fd00::5"], labels: app: "web"}
	client: {node: "node-a", interface: "lxc-client", addresses: ["10.0.1.6", "fd00::6"], labels: app: "client"}
	api:    {node: "node-a", interface: "lxc-api", addresses: ["10.0.1.7", "fd00::7"], labels: app: "api"}
}
settings: conntrackTimeouts: {tcp: 3600, tcpSyn: 30, tcpFin: 5, udp: 20}
policies: default: {
	web: {
		endpointSelector: matchLabels: app: "web"
		ingress: [{
			fromEndpoints: [{matchLabels: app: "client"}]
			toPorts: [{ports: [{port: 80, protocol: "TCP"}, {port: 53, protocol: "UDP"}]}]
		}, {
			fromEndpoints: [{matchLabels: app: "api"}]
			toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
		}]
		egress: [{toCIDR: ["203.0.113.0/24", "2001:db8:1::/48"]}]
	}
	api: {
		endpointSelector: matchLabels: app: "api"
		ingress: [{}]
	}
}
`

type ctNode struct {
	t    *testing.T
	coll *ebpf.Collection
	dec  *runtime.EventDecoder
	rd   *ringbuf.Reader
}

func loadCTNode(t *testing.T) *ctNode {
	t.Helper()
	testenv.RequireKernel(t)
	cfg, err := load.LoadFS(fstest.MapFS{"cluster.cue": {Data: []byte(ctCluster)}}, []string{"cluster.cue"})
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := arts[0]
	ra, err := runtime.ParseArtifacts(a.Node, a.Files)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := runtime.Load(ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	dec, err := runtime.NewEventDecoder(a.Manifest, a.Files[compiler.ManifestFile])
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(dp.Collection.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &ctNode{t: t, coll: dp.Collection, dec: dec, rd: rd}
}

// run sends frame through prog and returns whether it passed and the
// events it sent.
func (n *ctNode) run(prog string, frame []byte) (bool, []runtime.Event) {
	n.t.Helper()
	p := n.coll.Programs[prog]
	if p == nil {
		n.t.Fatalf("no program %s", prog)
	}
	ret, err := p.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		n.t.Fatalf("%s: %v", prog, err)
	}
	var evs []runtime.Event
	for {
		n.rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
		rec, err := n.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			n.t.Fatal(err)
		}
		ev, err := n.dec.Decode(rec.RawSample)
		if err != nil {
			n.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return ret == 0, evs
}

// ctEntry is a conntrack entry: time left, cookie and flags.
type ctEntry struct {
	left   time.Duration
	cookie uint32
	flags  uint32
}

// conntrack returns the conntrack entries by "saddr:sport>daddr:dport/proto/dir".
func (n *ctNode) conntrack() map[string]ctEntry {
	n.t.Helper()
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		n.t.Fatal(err)
	}
	out := map[string]ctEntry{}
	var k, v []byte
	it := n.coll.Maps["conntrack"].Iterate()
	for it.Next(&k, &v) {
		// net.IP prints an IPv4-mapped address in dotted form.
		s := net.JoinHostPort(net.IP(k[0:16]).String(), itoa(binary.BigEndian.Uint16(k[32:34]))) + ">" +
			net.JoinHostPort(net.IP(k[16:32]).String(), itoa(binary.BigEndian.Uint16(k[34:36]))) + "/" + itoa(uint16(k[36])) + "/" + [2]string{"ingress", "egress"}[k[37]]
		exp := binary.LittleEndian.Uint64(v[0:8])
		out[s] = ctEntry{left: time.Duration(int64(exp) - now.Nano()), cookie: binary.LittleEndian.Uint32(v[8:12]), flags: binary.LittleEndian.Uint32(v[12:16])}
	}
	if err := it.Err(); err != nil {
		n.t.Fatal(err)
	}
	return out
}

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

// tcpFrame builds an Ethernet/IPv4/TCP frame.
func tcpFrame(t *testing.T, src, dst string, sport, dport uint16, flags string) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Window: 1024,
		SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"), RST: strings.Contains(flags, "R")}
	return ipFrame(t, src, dst, layers.IPProtocolTCP, tcp, gopacket.Payload("x"))
}

func udpFrame(t *testing.T, src, dst string, sport, dport uint16) []byte {
	t.Helper()
	return ipFrame(t, src, dst, layers.IPProtocolUDP, &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, gopacket.Payload("x"))
}

// icmpError builds an ICMP destination-unreachable (port unreachable) from
// src to dst quoting the packet quoted (its IP header and 8 bytes).
func icmpError(t *testing.T, src, dst string, quoted []byte) []byte {
	t.Helper()
	inner := quoted[14:]
	ihl := int(inner[0]&0x0f) * 4
	return ipFrame(t, src, dst, layers.IPProtocolICMPv4,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(inner[:ihl+8]))
}

// icmp6Error builds an ICMPv6 destination-unreachable (port unreachable)
// from src to dst quoting the IPv6 packet quoted (its header and 8 bytes).
func icmp6Error(t *testing.T, src, dst string, quoted []byte) []byte {
	t.Helper()
	return ipFrame(t, src, dst, layers.IPProtocolICMPv6,
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}, gopacket.Payload(append([]byte{0, 0, 0, 0}, quoted[14:14+40+8]...)))
}

// icmp6Echo builds an ICMPv6 echo request (128) or reply (129) with
// identifier id.
func icmp6Echo(t *testing.T, src, dst string, typ uint8, id uint16) []byte {
	t.Helper()
	return ipFrame(t, src, dst, layers.IPProtocolICMPv6,
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1})
}

// ipFrame builds an Ethernet frame with an IPv4 or IPv6 header (by the
// addresses' family) in front of l.
func ipFrame(t *testing.T, src, dst string, proto layers.IPProtocol, l ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	var ip gopacket.NetworkLayer
	if s := net.ParseIP(src); s.To4() != nil {
		ip = &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: s.To4(), DstIP: net.ParseIP(dst).To4()}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: s, DstIP: net.ParseIP(dst)}
	}
	if c, ok := l[0].(interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}); ok {
		if err := c.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, append([]gopacket.SerializableLayer{eth, ip.(gopacket.SerializableLayer)}, l...)...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestConntrackKernel(t *testing.T) {
	n := loadCTNode(t)
	const web, client, api = "10.0.1.5", "10.0.1.6", "10.0.1.7"
	step := func(what, prog string, frame []byte, wantPass bool) []runtime.Event {
		t.Helper()
		ok, evs := n.run(prog, frame)
		if ok != wantPass {
			t.Errorf("%s: %s passed=%v, want %v (events %+v)", what, prog, ok, wantPass, evs)
		}
		return evs
	}
	second := time.Second

	// A new connection: allowed by the rule, tracked, reported once.
	syn := tcpFrame(t, client, web, 40000, 80, "S")
	evs := step("client SYN", "to_default_web", syn, true)
	if len(evs) != 1 || evs[0].Type != "verdict" || evs[0].Verdict != "allowed" || evs[0].Direction != "ingress" ||
		evs[0].Endpoint != "default/web" || evs[0].Source != client+":40000" || evs[0].Destination != web+":80" ||
		evs[0].Protocol != "tcp" || !strings.Contains(evs[0].Rule, "default/web ingress") || evs[0].Position == "" || evs[0].IdentityName == "" {
		t.Errorf("client SYN: events %+v, want one allowed verdict naming default/web, the rule and its position", evs)
	}
	key := client + ":40000>" + web + ":80/6/ingress"
	ct := n.conntrack()
	if e, ok := ct[key]; !ok || e.cookie == 0 || e.left <= 29*second || e.left > 30*second || e.flags != 0 {
		t.Fatalf("conntrack after SYN: %v, want %s with the rule's cookie and tcpSyn (30 s) left", ct, key)
	}

	// The reply leaves by web's enforced egress, which allows nothing in
	// the cluster: conntrack lets it through, with no event.
	evs = step("web SYN-ACK", "from_default_web", tcpFrame(t, web, client, 80, 40000, "SA"), true)
	if len(evs) != 0 {
		t.Errorf("reply sent events: %+v", evs)
	}
	if e := n.conntrack()[key]; e.flags&1 == 0 || e.left <= 29*second {
		t.Errorf("after the reply: %+v, want the seen-reply flag", e)
	}
	// The next packet of the connection is established: judged again,
	// allowed, no new event, and the entry now lives the tcp timeout.
	if evs := step("client ACK", "to_default_web", tcpFrame(t, client, web, 40000, 80, "A"), true); len(evs) != 0 {
		t.Errorf("established packet sent events: %+v", evs)
	}
	if e := n.conntrack()[key]; e.left <= 3599*second || e.left > 3600*second {
		t.Errorf("established entry has %v left, want tcp (3600 s)", e.left)
	}

	// An ICMP error about the tracked connection is related: it passes
	// web's egress. One about an unknown connection is judged by policy.
	step("related ICMP", "from_default_web", icmpError(t, web, client, syn), true)
	evs = step("unrelated ICMP", "from_default_web", icmpError(t, web, client, tcpFrame(t, client, web, 40999, 80, "S")), false)
	if len(evs) != 2 || evs[0].Verdict != "denied" || evs[1].Type != "drop" || evs[1].Reason != "policy denied" {
		t.Errorf("unrelated ICMP: events %+v, want a denied verdict and a policy drop", evs)
	}

	// A new connection from web is not a reply: denied by default.
	evs = step("web SYN out", "from_default_web", tcpFrame(t, web, client, 80, 40001, "S"), false)
	if len(evs) != 2 || evs[0].Type != "verdict" || evs[0].Verdict != "denied" || !strings.Contains(evs[0].Rule, "default-deny") ||
		evs[1].Type != "drop" || evs[1].Reason != "policy denied" {
		t.Errorf("web SYN out: events %+v, want a denied verdict and a drop", evs)
	}

	// FIN cuts the entry to tcpFin, and it stays cut.
	step("client FIN", "to_default_web", tcpFrame(t, client, web, 40000, 80, "FA"), true)
	step("web ACK", "from_default_web", tcpFrame(t, web, client, 80, 40000, "A"), true)
	if e := n.conntrack()[key]; e.left > 5*second || e.flags&2 == 0 {
		t.Errorf("after FIN: %+v, want at most tcpFin (5 s) and the closing flag", e)
	}

	// UDP: the udp timeout, and the reply passes.
	step("client DNS", "to_default_web", udpFrame(t, client, web, 5353, 53), true)
	step("web DNS answer", "from_default_web", udpFrame(t, web, client, 53, 5353), true)
	if e := n.conntrack()[client+":5353>"+web+":53/17/ingress"]; e.left <= 19*second || e.left > 20*second {
		t.Errorf("udp entry has %v left, want udp (20 s)", e.left)
	}

	// api's egress is open but its ingress is enforced and empty: its own
	// connection is tracked by the open program, so web's reply gets in.
	if evs := step("api SYN", "from_default_api", tcpFrame(t, api, web, 41000, 8080, "S"), true); len(evs) != 0 {
		t.Errorf("open direction sent events: %+v", evs)
	}
	if e, ok := n.conntrack()[api+":41000>"+web+":8080/6/egress"]; !ok || e.cookie != 0 {
		t.Errorf("open direction: entry %+v (present %v), want one with cookie 0", e, ok)
	}
	step("web reply to api", "to_default_api", tcpFrame(t, web, api, 8080, 41000, "SA"), true)
	step("unsolicited to api", "to_default_api", tcpFrame(t, web, api, 8080, 41001, "SA"), false)

	// A policy change that denies an established connection takes effect
	// on its next packet: empty web's policy map.
	pol := n.coll.Maps["pol_default_web"]
	var k, v []byte
	var keys [][]byte
	it := pol.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := pol.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	evs = step("established after the change", "to_default_web", tcpFrame(t, client, web, 40000, 80, "A"), false)
	if len(evs) != 1 || evs[0].Type != "drop" || evs[0].Reason != "policy denied" || !strings.Contains(evs[0].Rule, "default-deny") {
		t.Errorf("established after the change: events %+v, want one policy drop by the default deny (no new verdict)", evs)
	}
	step("UDP established after the change", "to_default_web", udpFrame(t, client, web, 5353, 53), false)
	// Replies still pass: the entry is there.
	step("UDP reply after the change", "from_default_web", udpFrame(t, web, client, 53, 5353), true)
}

// TestConntrackKernelIPv6 is the IPv6 side of TestConntrackKernel: the same
// programs track IPv6 connections, let replies and related ICMPv6 errors
// through, match ICMPv6 echo replies by their identifier, and report IPv6
// addresses in events.
func TestConntrackKernelIPv6(t *testing.T) {
	n := loadCTNode(t)
	const web, client = "fd00::5", "fd00::6"
	step := func(what, prog string, frame []byte, wantPass bool) []runtime.Event {
		t.Helper()
		ok, evs := n.run(prog, frame)
		if ok != wantPass {
			t.Errorf("%s: %s passed=%v, want %v (events %+v)", what, prog, ok, wantPass, evs)
		}
		return evs
	}

	syn := tcpFrame(t, client, web, 40000, 80, "S")
	evs := step("client SYN", "to_default_web", syn, true)
	if len(evs) != 1 || evs[0].Verdict != "allowed" || evs[0].Source != "[fd00::6]:40000" || evs[0].Destination != "[fd00::5]:80" ||
		evs[0].Endpoint != "default/web" || evs[0].Protocol != "tcp" {
		t.Errorf("client SYN: events %+v, want one allowed verdict with the IPv6 addresses", evs)
	}
	key := "[fd00::6]:40000>[fd00::5]:80/6/ingress"
	if e, ok := n.conntrack()[key]; !ok || e.cookie == 0 {
		t.Fatalf("conntrack after SYN: %v, want %s with the rule's cookie", n.conntrack(), key)
	}
	step("web SYN-ACK", "from_default_web", tcpFrame(t, web, client, 80, 40000, "SA"), true)
	if e := n.conntrack()[key]; e.flags&1 == 0 {
		t.Errorf("after the reply: %+v, want the seen-reply flag", e)
	}
	// The same ports over IPv4 are another connection: not a reply.
	step("IPv4 look-alike reply", "from_default_web", tcpFrame(t, "10.0.1.5", "10.0.1.6", 80, 40000, "SA"), false)

	// ICMPv6 errors about the connection are related; others are judged.
	step("related ICMPv6", "from_default_web", icmp6Error(t, web, client, syn), true)
	evs = step("unrelated ICMPv6", "from_default_web", icmp6Error(t, web, client, tcpFrame(t, client, web, 40999, 80, "S")), false)
	if len(evs) != 2 || evs[0].Verdict != "denied" || evs[1].Reason != "policy denied" {
		t.Errorf("unrelated ICMPv6: events %+v, want a denied verdict and a policy drop", evs)
	}

	// Echo: web pings a prefix its egress allows; the reply with the same
	// identifier gets in, one with another identifier does not.
	step("web echo request", "from_default_web", icmp6Echo(t, web, "2001:db8:1::1", 128, 77), true)
	if _, ok := n.conntrack()["[fd00::5]:77>[2001:db8:1::1]:77/58/egress"]; !ok {
		t.Errorf("echo request not tracked: %v", n.conntrack())
	}
	step("echo reply", "to_default_web", icmp6Echo(t, "2001:db8:1::1", web, 129, 77), true)
	step("echo reply, other id", "to_default_web", icmp6Echo(t, "2001:db8:1::1", web, 129, 78), false)
	step("echo request to a denied prefix", "from_default_web", icmp6Echo(t, web, "2001:db8:2::1", 128, 79), false)

	// UDP both ways.
	step("client DNS", "to_default_web", udpFrame(t, client, web, 5353, 53), true)
	step("web DNS answer", "from_default_web", udpFrame(t, web, client, 53, 5353), true)
	step("web unsolicited UDP", "from_default_web", udpFrame(t, web, client, 53, 5354), false)
}
