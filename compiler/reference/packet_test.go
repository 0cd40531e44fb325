package reference

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// packetPolicies: web/frontend allows TCP 80 and UDP 53 in, and ICMPv6 echo;
// web/admin is selected by no policy (open); egress of web/frontend allows
// TCP 443 to the world.
const packetPolicies = `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [
		{toPorts: [{ports: [{port: 80, protocol: "TCP"}, {port: 53, protocol: "UDP"}, {port: 80, protocol: "SCTP"}]}]},
		{icmps: [{fields: [{type: 128, family: "IPv6"}, {type: 8}]}]},
	]
	egress: [{toEntities: ["world"], toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]}]
}`

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// pkt describes a test frame; the zero value of each field is a plain
// packet.
type pkt struct {
	src, dst     string
	proto        string // tcp, udp, sctp, icmp, icmpv6, arp
	sport, dport uint16
	icmpType     uint8
	optWords     int    // IPv4 options, in 4-byte words
	id           uint32 // IPv4 ID or IPv6 fragment identification
	fragOff      uint16 // in 8-byte units
	mf           bool
	ext          []byte // IPv6 extension header types to put before the transport header
	frag6        bool   // add an IPv6 fragment header with id, fragOff, mf
	noL4         bool   // no transport header (a later fragment)
	payload      int    // payload bytes after the transport header
}

// transportLayer returns the serialisable transport header of p.
func (p pkt) transportLayer(ip gopacket.NetworkLayer) (gopacket.SerializableLayer, layers.IPProtocol) {
	set := func(l interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}) {
		_ = l.SetNetworkLayerForChecksum(ip)
	}
	switch p.proto {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: true, Window: 1024}
		set(t)
		return t, layers.IPProtocolTCP
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		set(u)
		return u, layers.IPProtocolUDP
	case "sctp":
		return &layers.SCTP{SrcPort: layers.SCTPPort(p.sport), DstPort: layers.SCTPPort(p.dport)}, layers.IPProtocolSCTP
	case "icmp":
		return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.icmpType, 0)}, layers.IPProtocolICMPv4
	case "icmpv6":
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.icmpType, 0)}
		set(i)
		return i, layers.IPProtocolICMPv6
	}
	panic("unknown protocol " + p.proto)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// build serialises p as an Ethernet frame with gopacket.
func (p pkt) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB}
	if p.proto == "arp" {
		eth.EthernetType = layers.EthernetTypeARP
		return serialize(t, eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: macA, SourceProtAddress: []byte{10, 0, 1, 2},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 1, 1},
		})
	}
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	payload := gopacket.Payload(make([]byte, p.payload))
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Id: uint16(p.id), FragOffset: p.fragOff}
		if p.mf {
			ip.Flags |= layers.IPv4MoreFragments
		}
		for range p.optWords {
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}})
		}
		l4, proto := p.transportLayer(ip)
		ip.Protocol = proto
		if p.noL4 {
			return serialize(t, eth, ip, payload)
		}
		return serialize(t, eth, ip, l4, payload)
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	l4, proto := p.transportLayer(ip)
	var rest []byte
	if !p.noL4 {
		rest = serialize(t, l4, payload)
	} else {
		rest = payload
	}
	// Extension headers, innermost last: each names the next header.
	types := append([]byte(nil), p.ext...)
	if p.frag6 {
		types = append(types, ip6Fragment)
	}
	var exts []byte
	for i, ty := range types {
		next := byte(proto)
		if i+1 < len(types) {
			next = types[i+1]
		}
		if ty == ip6Fragment {
			h := make([]byte, 8)
			h[0] = next
			field := p.fragOff << 3
			if p.mf {
				field |= 1
			}
			binary.BigEndian.PutUint16(h[2:], field)
			binary.BigEndian.PutUint32(h[4:], p.id)
			exts = append(exts, h...)
			continue
		}
		// 16 bytes: next header, length 1 (in 8-byte units beyond the first 8), PadN.
		h := []byte{next, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		exts = append(exts, h...)
	}
	ip.NextHeader = proto
	if len(types) > 0 {
		ip.NextHeader = layers.IPProtocol(types[0])
	}
	return serialize(t, eth, ip, gopacket.Payload(append(exts, rest...)))
}

type packetQuery struct {
	name  string
	at    string // endpoint
	dir   Direction
	frame func(t *testing.T) []byte
	want  string
	// why, for a malformed frame, is the start of the problem ParseFrame
	// reports, so each case is known to hit the check it names.
	why string
}

func frame(p pkt) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return p.build(t) }
}

// mutate builds p and then changes its bytes.
func mutate(p pkt, change func(b []byte) []byte) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return change(p.build(t)) }
}

const ethLen, ip4Len, ip6Len = 14, 20, 40

func runPackets(t *testing.T, e *Evaluator, qs []packetQuery) {
	t.Helper()
	for _, q := range qs {
		at := q.at
		if at == "" {
			at = "web/frontend"
		}
		b := q.frame(t)
		v := e.Packet(endpointByID(t, e.Config(), at), q.dir, b)
		if got := summary(v); got != q.want {
			t.Errorf("%s at %s %s: %s, want %s", q.name, at, q.dir, got, q.want)
		}
		if q.why != "" {
			if _, _, err := ParseFrame(b); err == nil || !strings.HasPrefix(err.Error(), q.why) {
				t.Errorf("%s: problem %v, want %q", q.name, err, q.why)
			}
		}
	}
}

// docs/policy.md "Packets": headers.
func TestPacketHeaders(t *testing.T) {
	e := New(loadConfig(t, packetPolicies))
	const allowTCP = "allow by web/p ingress[0]"
	tcp80 := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 80, payload: 10}
	tcp22 := tcp80
	tcp22.dport = 22
	withOpts := tcp80
	withOpts.optWords = 10 // IHL 15
	udp53 := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "udp", sport: 40000, dport: 53}
	sctp80 := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "sctp", sport: 40000, dport: 80}
	icmpEcho := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "icmp", icmpType: 8}
	v6 := pkt{src: "2001:db8::1", dst: "fd00:10::1", proto: "tcp", sport: 40000, dport: 80, payload: 4}
	v6ext := v6
	v6ext.ext = []byte{ip6HopByHop, ip6DestOpts, ip6Routing, ip6DestOpts}
	v6ext22 := v6ext
	v6ext22.dport = 22
	ns := pkt{src: "fe80::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 135}
	echo6 := pkt{src: "2001:db8::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 128}
	mld := pkt{src: "2001:db8::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 143}
	atAdmin := func(p pkt) pkt { p.dst = "10.0.1.2"; return p }

	setByte := func(i int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[i] = v; return b }
	}
	setU16 := func(i int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[i:], v); return b }
	}
	cut := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { return b[:n] }
	}
	runPackets(t, e, []packetQuery{
		{"TCP to an allowed port", "", Ingress, frame(tcp80), allowTCP, ""},
		{"TCP to another port", "", Ingress, frame(tcp22), "deny by default", ""},
		{"UDP", "", Ingress, frame(udp53), allowTCP, ""},
		{"SCTP", "", Ingress, frame(sctp80), allowTCP, ""},
		{"ICMP echo", "", Ingress, frame(icmpEcho), "allow by web/p ingress[1]", ""},
		{"IPv4 options are skipped", "", Ingress, frame(withOpts), allowTCP, ""},
		{"Ethernet padding after the IP packet", "", Ingress, func(t *testing.T) []byte { return append(tcp80.build(t), 0, 0, 0, 0) }, allowTCP, ""},
		{"egress", "", Egress, frame(pkt{src: "10.0.1.1", dst: "8.8.8.8", proto: "tcp", sport: 40000, dport: 443}), "allow by web/p egress[0]", ""},
		{"egress to another port", "", Egress, frame(pkt{src: "10.0.1.1", dst: "8.8.8.8", proto: "tcp", sport: 443, dport: 40000}), "deny by default", ""},

		{"ARP passes", "", Ingress, frame(pkt{proto: "arp"}), "allow exempt", ""},
		{"frame shorter than Ethernet", "", Ingress, mutate(tcp80, cut(10)), "deny malformed", "ethernet"},
		{"IPv4 header truncated", "", Ingress, mutate(tcp80, cut(ethLen+19)), "deny malformed", "IPv4 header truncated"},
		{"IPv4 version 5", "", Ingress, mutate(tcp80, setByte(ethLen, 0x55)), "deny malformed", "IPv4 header with version 5"},
		{"IPv4 IHL 4", "", Ingress, mutate(tcp80, setByte(ethLen, 0x44)), "deny malformed", "IPv4 header length 16 < 20"},
		{"frame cut in the TCP header", "", Ingress, mutate(tcp80, cut(ethLen+ip4Len+10)), "deny malformed", "IPv4 total length 50"},
		{"IPv4 options cut", "", Ingress, mutate(withOpts, cut(ethLen+40)), "deny malformed", "IPv4 header length 60 beyond"},
		{"IPv4 total length beyond the frame", "", Ingress, mutate(tcp80, setU16(ethLen+2, 200)), "deny malformed", "IPv4 total length 200"},
		{"IPv4 total length below the header", "", Ingress, mutate(tcp80, setU16(ethLen+2, 19)), "deny malformed", "IPv4 total length 19"},
		{"IPv4 total length cuts the TCP header", "", Ingress, mutate(tcp80, setU16(ethLen+2, ip4Len+19)), "deny malformed", "protocol 6 header truncated: 19 bytes"},
		{"TCP header truncated", "", Ingress, mutate(tcp80, func(b []byte) []byte {
			b = b[:ethLen+ip4Len+10]
			binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+10)
			return b
		}), "deny malformed", "protocol 6 header truncated: 10 bytes"},
		{"TCP data offset 4", "", Ingress, mutate(tcp80, setByte(ethLen+ip4Len+12, 4<<4)), "deny malformed", "TCP data offset 16 bytes"},
		{"TCP data offset beyond the packet", "", Ingress, mutate(tcp80, setByte(ethLen+ip4Len+12, 15<<4)), "deny malformed", "TCP data offset 60 bytes"},
		{"UDP header truncated", "", Ingress, mutate(udp53, func(b []byte) []byte {
			b = b[:ethLen+ip4Len+7]
			binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+7)
			return b
		}), "deny malformed", "protocol 17 header truncated"},
		{"SCTP header truncated", "", Ingress, mutate(sctp80, func(b []byte) []byte {
			b = b[:ethLen+ip4Len+11]
			binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+11)
			return b
		}), "deny malformed", "protocol 132 header truncated"},
		{"ICMP header truncated", "", Ingress, mutate(icmpEcho, func(b []byte) []byte {
			b = b[:ethLen+ip4Len+7]
			binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+7)
			return b
		}), "deny malformed", "protocol 1 header truncated"},
		{"malformed at an open endpoint passes", "web/admin", Ingress, mutate(atAdmin(tcp80), setByte(ethLen, 0x44)), "allow open", ""},
		{"malformed at an enforced egress", "", Egress, mutate(tcp80, setByte(ethLen, 0x44)), "deny malformed", "IPv4 header length"},

		{"IPv6 TCP", "", Ingress, frame(v6), allowTCP, ""},
		{"IPv6 extension headers are skipped", "", Ingress, frame(v6ext), allowTCP, ""},
		{"IPv6 extension headers, denied port", "", Ingress, frame(v6ext22), "deny by default", ""},
		{"IPv6 header truncated", "", Ingress, mutate(v6, cut(ethLen+39)), "deny malformed", "IPv6 header truncated"},
		{"IPv6 version 4", "", Ingress, mutate(v6, setByte(ethLen, 0x40)), "deny malformed", "IPv6 header with version 4"},
		{"IPv6 payload length beyond the frame", "", Ingress, mutate(v6, setU16(ethLen+4, 500)), "deny malformed", "IPv6 payload length 500"},
		{"IPv6 extension header beyond the payload", "", Ingress, mutate(v6ext, setByte(ethLen+ip6Len+1, 200)), "deny malformed", "IPv6 extension header 0 of 1608 bytes"},
		{"IPv6 extension chain cut by the payload length", "", Ingress, mutate(v6ext, setU16(ethLen+4, 36)), "deny malformed", "IPv6 extension header 43 truncated"},
		{"IPv6 TCP header cut by the payload length", "", Ingress, mutate(v6, setU16(ethLen+4, 12)), "deny malformed", "protocol 6 header truncated: 12 bytes"},
		{"ICMPv6 echo", "", Ingress, frame(echo6), "allow by web/p ingress[1]", ""},
		{"ICMPv6 neighbour solicitation passes", "", Ingress, frame(ns), "allow exempt", ""},
		{"ICMPv6 router solicitation passes", "", Ingress, frame(pkt{src: "fe80::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 133}), "allow exempt", ""},
		{"ICMPv6 redirect passes", "", Ingress, frame(pkt{src: "fe80::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 137}), "allow exempt", ""},
		{"ICMPv6 MLD (143) does not", "", Ingress, frame(mld), "deny by default", ""},
		{"ICMPv6 header truncated", "", Ingress, mutate(ns, func(b []byte) []byte {
			b = b[:ethLen+ip6Len+3]
			binary.BigEndian.PutUint16(b[ethLen+4:], 3)
			return b
		}), "deny malformed", "protocol 58 header truncated"},
	})
}

// Header drops are not policy denies: audit does not let them through.
func TestPacketMalformedNotAudited(t *testing.T) {
	e := New(loadConfig(t, packetPolicies+"\nsettings: audit: true"))
	tcp22 := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 22}
	runPackets(t, e, []packetQuery{
		{"denied port", "", Ingress, frame(tcp22), "audit by default", ""},
		{"malformed", "", Ingress, mutate(tcp22, func(b []byte) []byte { b[ethLen] = 0x44; return b }), "deny malformed", ""},
	})
}

// docs/policy.md "Packets": fragments.
func TestPacketFragments(t *testing.T) {
	e := New(loadConfig(t, packetPolicies))
	first := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "udp", sport: 40000, dport: 53, id: 7, mf: true, payload: 16}
	later := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "udp", id: 7, fragOff: 3, noL4: true, payload: 16}
	last := later
	last.fragOff, last.mf = 5, false
	deniedFirst := first
	deniedFirst.id, deniedFirst.dport = 8, 5353
	deniedLater := later
	deniedLater.id = 8
	otherSource := later
	otherSource.src = "8.8.4.4"
	otherProto := later
	otherProto.proto = "tcp"
	tinyFirst := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 80, id: 9, mf: true}
	tinyLater := pkt{src: "8.8.8.8", dst: "10.0.1.1", proto: "tcp", id: 9, fragOff: 1, noL4: true, payload: 16}
	atAdmin := later
	atAdmin.dst, atAdmin.id = "10.0.1.2", 99

	v6first := pkt{src: "2001:db8::1", dst: "fd00:10::1", proto: "tcp", sport: 40000, dport: 80, id: 70000, mf: true, frag6: true, ext: []byte{ip6HopByHop}}
	v6later := pkt{src: "2001:db8::1", dst: "fd00:10::1", proto: "tcp", id: 70000, fragOff: 4, frag6: true, noL4: true, payload: 16}
	v6unknown := v6later
	v6unknown.id = 70001

	runPackets(t, e, []packetQuery{
		{"later fragment before its first", "", Ingress, frame(later), "deny fragment", ""},
		{"later fragment at an open endpoint", "web/admin", Ingress, frame(atAdmin), "allow open", ""},
		{"first fragment", "", Ingress, frame(first), "allow by web/p ingress[0]", ""},
		{"later fragment", "", Ingress, frame(later), "allow by web/p ingress[0]", ""},
		{"last fragment", "", Ingress, frame(last), "allow by web/p ingress[0]", ""},
		{"last fragment again (out of order)", "", Ingress, frame(later), "allow by web/p ingress[0]", ""},
		{"same ID, other source", "", Ingress, frame(otherSource), "deny fragment", ""},
		{"same ID, other protocol", "", Ingress, frame(otherProto), "deny fragment", ""},
		{"first fragment to a denied port", "", Ingress, frame(deniedFirst), "deny by default", ""},
		{"later fragment of a denied datagram", "", Ingress, frame(deniedLater), "deny by default", ""},
		{"first fragment too short for its TCP header", "", Ingress, mutate(tinyFirst, func(b []byte) []byte {
			b = b[:ethLen+ip4Len+8]
			binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+8)
			return b
		}), "deny malformed", "protocol 6 header truncated: 8 bytes"},
		{"and its later fragment", "", Ingress, frame(tinyLater), "deny fragment", ""},
		{"IPv6 later fragment before its first", "", Ingress, frame(v6later), "deny fragment", ""},
		{"IPv6 first fragment", "", Ingress, frame(v6first), "allow by web/p ingress[0]", ""},
		{"IPv6 later fragment", "", Ingress, frame(v6later), "allow by web/p ingress[0]", ""},
		{"IPv6 later fragment, unknown ID", "", Ingress, frame(v6unknown), "deny fragment", ""},
	})
	e.ForgetFragments()
	runPackets(t, e, []packetQuery{{"after ForgetFragments", "", Ingress, frame(later), "deny fragment", ""}})
}

func TestParseFrame(t *testing.T) {
	p := pkt{src: "10.0.1.2", dst: "10.0.1.1", proto: "tcp", sport: 1234, dport: 80, optWords: 3}
	f, ok, err := ParseFrame(p.build(t))
	want := Flow{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("10.0.1.1"), Protocol: protoTCP, SrcPort: 1234, DstPort: 80}
	if f != want || !ok || err != nil {
		t.Errorf("ParseFrame = %+v, %v, %v; want %+v", f, ok, err, want)
	}
	if _, ok, err := ParseFrame(pkt{proto: "arp"}.build(t)); ok || err != nil {
		t.Errorf("ParseFrame(ARP) = %v, %v; want not IP", ok, err)
	}
	b := p.build(t)
	b[ethLen] = 0x44
	if _, _, err := ParseFrame(b); err == nil || err.Error() != "IPv4 header length 16 < 20" {
		t.Errorf("ParseFrame(IHL 4) error = %v", err)
	}
}

// FuzzPacket: any frame gets a verdict without a panic, and at an enforced
// subject exactly the frames ParseFrame finds malformed are dropped as such.
func FuzzPacket(f *testing.F) {
	for _, p := range []pkt{
		{src: "8.8.8.8", dst: "10.0.1.1", proto: "tcp", sport: 1, dport: 80, optWords: 2},
		{src: "8.8.8.8", dst: "10.0.1.1", proto: "udp", sport: 1, dport: 53, id: 3, mf: true},
		{src: "2001:db8::1", dst: "fd00:10::1", proto: "tcp", sport: 1, dport: 80, ext: []byte{ip6HopByHop, ip6Routing}, frag6: true, mf: true, id: 5},
		{src: "fe80::1", dst: "fd00:10::1", proto: "icmpv6", icmpType: 135},
		{proto: "arp"},
	} {
		f.Add(p.build(f))
	}
	cfg := loadConfig(f, packetPolicies)
	e := New(cfg)
	var frontend = cfg.Endpoints[len(cfg.Endpoints)-1] // web/frontend sorts last
	f.Fuzz(func(t *testing.T, b []byte) {
		if frontend.ID() != "web/frontend" {
			t.Fatalf("endpoint %s", frontend.ID())
		}
		v := e.Packet(frontend, Ingress, b)
		_, _, err := ParseFrame(b)
		if (err != nil) != (v.Decider.Kind == KindMalformed) || (err != nil && v.Allowed) {
			t.Errorf("ParseFrame error %v but verdict %v", err, v)
		}
	})
}
