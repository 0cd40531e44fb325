package randpolicy

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Packet is one Ethernet frame, described by one line of text:
//
//	tcp 10.0.1.1:40000 > 10.0.2.2:80 syn
//	udp 10.0.1.1:40000 > 8.8.8.8:53 opts=2 trunc=45
//	icmp 10.0.1.1 > 10.0.2.2 type=3 code=1
//	ip 10.0.1.1 > 10.0.2.2 proto=47
//	arp 10.0.1.1 > 10.0.2.2
//	tcp [fd00::1:1]:40000 > [2001:db8::7]:80 syn ext=hbh.rt.dst
//	icmp fd00::1:1 > fd00::2:2 type=135
//	icmp 10.0.2.2 > 10.0.1.1 type=3 code=3 quote=1
//
// The addresses say the IP version: IPv4 addresses make an IPv4 packet,
// IPv6 ones an IPv6 packet (kind icmp is then ICMPv6). The frame is built
// with gopacket from the protocol, addresses and ports, then the options
// change it:
//
//	syn       set TCP SYN
//	mf        set more-fragments (a first fragment when frag is 0); IPv6
//	          packets get a fragment header for it
//	frag=N    fragment offset in 8-byte units; the packet then has no
//	          transport header, only payload
//	id=N      IPv4 identification, or the IPv6 fragment identification
//	opts=N    N 4-byte words of IPv4 options (router alert)
//	proto=N   the IP protocol number, for kind "ip"
//	type=N    ICMP type (default 8, echo request)
//	code=N    ICMP code
//	ext=H.H   IPv6 extension headers, in order: hbh (hop-by-hop), rt
//	          (routing), dst (destination options), frag (the fragment
//	          header, at this place rather than last), long (destination
//	          options of 976 bytes) and big (a hop-by-hop header whose
//	          length runs past the packet)
//	quote=N   for an ICMP error: quote the IP header and the first 8 bytes
//	          of the transport header of packet N (1-based) of the probe
//	ver=N     overwrite the IP version field
//	ihl=N     overwrite the IPv4 header length field (in words)
//	totlen=N  overwrite the IPv4 total length field
//	plen=N    overwrite the IPv6 payload length field
//	tcpoff=N  overwrite the TCP data offset field (in words)
//	pad=N     append N zero bytes after the IP packet (Ethernet padding)
//	trunc=N   cut the frame to N bytes
//
// The fields ver, ihl, totlen, plen, tcpoff and trunc make malformed
// packets, and so can ext; checksums are not recomputed after them, as
// policy reads none.
type Packet struct {
	Kind             string // tcp, udp, sctp, icmp, ip, arp
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	SYN, MF          bool
	Frag             uint16
	ID               uint16
	Opts             int
	Proto            uint8 // for Kind "ip"
	Type, Code       uint8 // for Kind "icmp"
	Ext              []string
	Quote            int // 0: none
	Ver, IHL         int // -1: not overwritten
	TotLen, TCPOff   int // -1: not overwritten
	PLen             int // -1: not overwritten
	Pad, Trunc       int // 0: none
}

// NewPacket returns a packet of kind between two addresses with no
// options set.
func NewPacket(kind string, src, dst netip.Addr, sport, dport uint16) Packet {
	return Packet{Kind: kind, Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Type: 8, Ver: -1, IHL: -1, TotLen: -1, TCPOff: -1, PLen: -1}
}

// hasPorts reports whether the packet's line carries ports.
func (p Packet) hasPorts() bool {
	return p.Kind == "tcp" || p.Kind == "udp" || p.Kind == "sctp"
}

// IPv6 reports whether the packet is IPv6.
func (p Packet) IPv6() bool { return p.Src.Is6() }

// Malformed reports whether an option may make the packet's headers
// malformed or truncated (padding does not; extension headers may).
func (p Packet) Malformed() bool {
	return p.Ver >= 0 || p.IHL >= 0 || p.TotLen >= 0 || p.TCPOff >= 0 || p.PLen >= 0 || p.Trunc > 0 || len(p.Ext) > 0
}

// icmpError reports whether the packet is an ICMP error, which the
// datapath relates to the connection of the packet it quotes: destination
// unreachable, time exceeded, parameter problem; for ICMPv6 also packet
// too big.
func (p Packet) icmpError() bool {
	if p.Kind != "icmp" {
		return false
	}
	if p.IPv6() {
		return p.Type >= 1 && p.Type <= 4
	}
	return p.Type == 3 || p.Type == 11 || p.Type == 12
}

// String returns the packet's line; ParsePacket reads it back.
func (p Packet) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if p.hasPorts() {
		fmt.Fprintf(&b, " %s > %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	} else {
		fmt.Fprintf(&b, " %s > %s", p.Src, p.Dst)
	}
	flag := func(on bool, s string) {
		if on {
			b.WriteString(" " + s)
		}
	}
	num := func(on bool, name string, v int) {
		if on {
			fmt.Fprintf(&b, " %s=%d", name, v)
		}
	}
	flag(p.SYN, "syn")
	flag(p.MF, "mf")
	num(p.Frag != 0, "frag", int(p.Frag))
	num(p.ID != 0, "id", int(p.ID))
	num(p.Opts != 0, "opts", p.Opts)
	num(p.Kind == "ip", "proto", int(p.Proto))
	num(p.Kind == "icmp", "type", int(p.Type))
	num(p.Kind == "icmp" && p.Code != 0, "code", int(p.Code))
	flag(len(p.Ext) > 0, "ext="+strings.Join(p.Ext, "."))
	num(p.Quote != 0, "quote", p.Quote)
	num(p.Ver >= 0, "ver", p.Ver)
	num(p.IHL >= 0, "ihl", p.IHL)
	num(p.TotLen >= 0, "totlen", p.TotLen)
	num(p.PLen >= 0, "plen", p.PLen)
	num(p.TCPOff >= 0, "tcpoff", p.TCPOff)
	num(p.Pad != 0, "pad", p.Pad)
	num(p.Trunc != 0, "trunc", p.Trunc)
	return b.String()
}

// extHeaders are the IPv6 extension headers a packet may carry, by name,
// with their next-header numbers.
var extHeaders = map[string]uint8{"hbh": 0, "rt": 43, "dst": 60, "frag": 44, "long": 60, "big": 0}

// ParsePacket reads a packet line.
func ParsePacket(line string) (Packet, error) {
	f := strings.Fields(line)
	if len(f) < 4 || f[2] != ">" {
		return Packet{}, fmt.Errorf("%q: want KIND SRC > DST [OPTIONS]", line)
	}
	p := NewPacket(f[0], netip.Addr{}, netip.Addr{}, 0, 0)
	switch p.Kind {
	case "tcp", "udp", "sctp", "icmp", "ip", "arp":
	default:
		return Packet{}, fmt.Errorf("%q: unknown kind %q (tcp, udp, sctp, icmp, ip, arp)", line, p.Kind)
	}
	for i, s := range []string{f[1], f[3]} {
		var ap netip.AddrPort
		if p.hasPorts() {
			var err error
			if ap, err = netip.ParseAddrPort(s); err != nil {
				return Packet{}, fmt.Errorf("%q: %v", line, err)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return Packet{}, fmt.Errorf("%q: %v", line, err)
			}
			ap = netip.AddrPortFrom(a, 0)
		}
		if ap.Addr().Zone() != "" {
			return Packet{}, fmt.Errorf("%q: %s: write the address without a zone", line, ap.Addr())
		}
		if i == 0 {
			p.Src, p.SrcPort = ap.Addr(), ap.Port()
		} else {
			p.Dst, p.DstPort = ap.Addr(), ap.Port()
		}
	}
	if p.Src.Is4() != p.Dst.Is4() {
		return Packet{}, fmt.Errorf("%q: the addresses must be both IPv4 or both IPv6", line)
	}
	if p.Kind == "arp" && !p.Src.Is4() {
		return Packet{}, fmt.Errorf("%q: arp takes IPv4 addresses", line)
	}
	for _, o := range f[4:] {
		k, v, hasValue := strings.Cut(o, "=")
		if k == "ext" {
			for _, h := range strings.Split(v, ".") {
				if _, ok := extHeaders[h]; !ok {
					return Packet{}, fmt.Errorf("%q: unknown extension header %q (hbh, rt, dst, frag, long, big)", line, h)
				}
				p.Ext = append(p.Ext, h)
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if hasValue && (err != nil || n < 0 || n > 65535) {
			return Packet{}, fmt.Errorf("%q: option %s: want a number from 0 to 65535", line, o)
		}
		switch k {
		case "syn":
			p.SYN = true
		case "mf":
			p.MF = true
		case "frag":
			p.Frag = uint16(n)
		case "id":
			p.ID = uint16(n)
		case "opts":
			p.Opts = n
		case "proto":
			p.Proto = uint8(n)
		case "type":
			p.Type = uint8(n)
		case "code":
			p.Code = uint8(n)
		case "quote":
			p.Quote = n
		case "ver":
			p.Ver = n
		case "ihl":
			p.IHL = n
		case "totlen":
			p.TotLen = n
		case "plen":
			p.PLen = n
		case "tcpoff":
			p.TCPOff = n
		case "pad":
			p.Pad = n
		case "trunc":
			p.Trunc = n
		default:
			return Packet{}, fmt.Errorf("%q: unknown option %q", line, o)
		}
		if (k == "proto" || k == "type" || k == "code") && n > 255 || k == "opts" && n > 10 || (k == "ver" || k == "ihl" || k == "tcpoff") && n > 15 || k == "frag" && n > 8191 {
			return Packet{}, fmt.Errorf("%q: option %s out of range", line, o)
		}
		if p.IPv6() && (k == "opts" || k == "ihl" || k == "totlen") || !p.IPv6() && (k == "plen") {
			return Packet{}, fmt.Errorf("%q: option %s is not for IPv%s packets", line, k, map[bool]string{true: "6", false: "4"}[p.IPv6()])
		}
	}
	if len(p.Ext) > 0 && !p.IPv6() {
		return Packet{}, fmt.Errorf("%q: ext is for IPv6 packets", line)
	}
	if p.Quote != 0 && !p.icmpError() {
		return Packet{}, fmt.Errorf("%q: quote is for ICMP errors", line)
	}
	return p, nil
}

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// payload is what every packet carries after its headers.
var payload = gopacket.Payload("ebpfc differential")

// Frame builds the packet as an Ethernet frame. A packet that quotes
// another is built by Probe.Frame.
func (p Packet) Frame() ([]byte, error) {
	if p.Quote != 0 {
		return nil, fmt.Errorf("%q: a packet that quotes another is built with its probe", p.String())
	}
	return p.frame(nil)
}

// frame builds the packet; quoted is the start of the packet an ICMP error
// quotes (nil for none).
func (p Packet) frame(quoted []byte) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	var ls []gopacket.SerializableLayer
	l4at := 0 // where the transport header starts, from the IP header
	switch {
	case p.Kind == "arp":
		eth.EthernetType = layers.EthernetTypeARP
		ls = []gopacket.SerializableLayer{eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: srcMAC, SourceProtAddress: p.Src.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: p.Dst.AsSlice(),
		}}
	case p.IPv6():
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: p.Src.AsSlice(), DstIP: p.Dst.AsSlice()}
		ext, next := p.extensionHeaders(uint8(p.ipProto()))
		ip.NextHeader = layers.IPProtocol(next)
		ls = []gopacket.SerializableLayer{eth, ip}
		if len(ext) > 0 {
			ls = append(ls, gopacket.Payload(ext))
		}
		l4at = 40 + len(ext)
		if p.Frag == 0 {
			ls = append(ls, p.transport(ip, quoted)...)
		}
		if quoted == nil {
			ls = append(ls, payload)
		}
	default:
		ip := &layers.IPv4{
			Version: 4, TTL: 64, Id: p.ID, FragOffset: p.Frag,
			SrcIP: p.Src.AsSlice(), DstIP: p.Dst.AsSlice(), Protocol: p.ipProto(),
		}
		if p.MF {
			ip.Flags |= layers.IPv4MoreFragments
		}
		for range p.Opts {
			// Router alert (type 148, length 4) fills one 4-byte word.
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}})
		}
		ls = []gopacket.SerializableLayer{eth, ip}
		l4at = 20 + 4*p.Opts
		if p.Frag == 0 {
			ls = append(ls, p.transport(ip, quoted)...)
		}
		if quoted == nil {
			ls = append(ls, payload)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("%q: %w", p.String(), err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if p.Kind != "arp" {
		const ipOff = 14
		if p.Ver >= 0 {
			b[ipOff] = byte(p.Ver)<<4 | b[ipOff]&0x0f
		}
		if p.IHL >= 0 {
			b[ipOff] = b[ipOff]&0xf0 | byte(p.IHL)
		}
		if p.TotLen >= 0 {
			b[ipOff+2], b[ipOff+3] = byte(p.TotLen>>8), byte(p.TotLen)
		}
		if p.PLen >= 0 {
			b[ipOff+4], b[ipOff+5] = byte(p.PLen>>8), byte(p.PLen)
		}
		if p.TCPOff >= 0 && p.Kind == "tcp" && p.Frag == 0 {
			i := ipOff + l4at + 12
			b[i] = byte(p.TCPOff)<<4 | b[i]&0x0f
		}
	}
	b = append(b, make([]byte, p.Pad)...)
	if p.Trunc > 0 && p.Trunc < len(b) {
		b = b[:p.Trunc]
	}
	return b, nil
}

// extensionHeaders returns the IPv6 extension headers of the packet, each
// written with the next header of what follows it, and the next header of
// the IPv6 header. proto is the transport's protocol. A fragment header
// (for mf or frag) goes where ext names "frag", else last.
func (p Packet) extensionHeaders(proto uint8) ([]byte, uint8) {
	names := slices.Clone(p.Ext)
	if (p.MF || p.Frag != 0) && !slices.Contains(names, "frag") {
		names = append(names, "frag")
	}
	next := proto
	var ext []byte
	for i := len(names) - 1; i >= 0; i-- {
		var hdr []byte
		switch names[i] {
		case "frag":
			fw := p.Frag << 3
			if p.MF {
				fw |= 1
			}
			hdr = []byte{next, 0, byte(fw >> 8), byte(fw), 0, 0, byte(p.ID >> 8), byte(p.ID)}
		case "long":
			// 976 bytes: the transport header behind it starts at
			// 1016, and one more 8-byte header takes it past 1023.
			hdr = make([]byte, 976)
			hdr[0], hdr[1] = next, 976/8-1
		case "rt":
			hdr = []byte{next, 0, 0, 0, 0, 0, 0, 0} // routing type 0, no segments left
		default:
			hdr = []byte{next, 0, 1, 4, 0, 0, 0, 0} // PadN fills the 8 bytes
			if names[i] == "big" {
				hdr[1] = 255
			}
		}
		ext = append(hdr, ext...)
		next = extHeaders[names[i]]
	}
	return ext, next
}

func (p Packet) ipProto() layers.IPProtocol {
	switch p.Kind {
	case "tcp":
		return layers.IPProtocolTCP
	case "udp":
		return layers.IPProtocolUDP
	case "sctp":
		return layers.IPProtocolSCTP
	case "icmp":
		if p.IPv6() {
			return layers.IPProtocolICMPv6
		}
		return layers.IPProtocolICMPv4
	}
	return layers.IPProtocol(p.Proto)
}

// transport returns the transport header's layers; an ICMP error carries
// quoted after its header.
func (p Packet) transport(ip gopacket.NetworkLayer, quoted []byte) []gopacket.SerializableLayer {
	switch p.Kind {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort), SYN: p.SYN, Window: 1024}
		_ = t.SetNetworkLayerForChecksum(ip)
		return []gopacket.SerializableLayer{t}
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
		_ = u.SetNetworkLayerForChecksum(ip)
		return []gopacket.SerializableLayer{u}
	case "sctp":
		return []gopacket.SerializableLayer{&layers.SCTP{SrcPort: layers.SCTPPort(p.SrcPort), DstPort: layers.SCTPPort(p.DstPort), VerificationTag: 1}}
	case "icmp":
		if p.IPv6() {
			i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.Type, p.Code)}
			_ = i.SetNetworkLayerForChecksum(ip)
			ls := []gopacket.SerializableLayer{i}
			switch {
			case p.Type == 128 || p.Type == 129:
				// An echo's identifier (0) and sequence number.
				ls = append(ls, &layers.ICMPv6Echo{SeqNumber: 1})
			case quoted != nil:
				// 4 bytes unused (or the MTU, the pointer) before
				// the quoted packet.
				ls = append(ls, gopacket.Payload(append([]byte{0, 0, 0, 0}, quoted...)))
			}
			return ls
		}
		ls := []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.Type, p.Code)}}
		if quoted != nil {
			ls = append(ls, gopacket.Payload(quoted))
		}
		return ls
	}
	if quoted != nil {
		return []gopacket.SerializableLayer{gopacket.Payload(quoted)}
	}
	return nil
}

// quotation is what an ICMP error quotes of the frame of a packet: its IP
// header (IPv4 options and IPv6 extension headers included) and the first
// 8 bytes behind it.
func (p Packet) quotation(frame []byte) []byte {
	l4 := 14 + 20 + 4*p.Opts
	if p.IPv6() {
		ext, _ := p.extensionHeaders(0)
		l4 = 14 + 40 + len(ext)
	}
	return slices.Clone(frame[14:min(l4+8, len(frame))])
}

// Probe is one or more packets from one address to another, sent in order
// into a datapath whose state was cleared before the first. Its line joins
// the packets' lines with " ; ".
type Probe struct {
	Packets []Packet
}

// Src and Dst are the addresses of the probe's first packet; every packet
// of a probe has the same, or the same reversed (a reply, or an ICMP error
// about an earlier packet).
func (p Probe) Src() netip.Addr { return p.Packets[0].Src }

// Dst is the destination address.
func (p Probe) Dst() netip.Addr { return p.Packets[0].Dst }

func (p Probe) String() string {
	parts := make([]string, len(p.Packets))
	for i, pk := range p.Packets {
		parts[i] = pk.String()
	}
	return strings.Join(parts, " ; ")
}

// twoWay reports whether a packet of the probe goes the other way.
func (p Probe) twoWay() bool {
	return slices.ContainsFunc(p.Packets, func(pk Packet) bool { return pk.Src != p.Src() })
}

// ParseProbe reads a probe line.
func ParseProbe(line string) (Probe, error) {
	var p Probe
	for _, part := range strings.Split(line, ";") {
		pk, err := ParsePacket(strings.TrimSpace(part))
		if err != nil {
			return Probe{}, err
		}
		if len(p.Packets) > 0 && (pk.Src != p.Src() || pk.Dst != p.Dst()) && (pk.Src != p.Dst() || pk.Dst != p.Src()) {
			return Probe{}, fmt.Errorf("%q: every packet of a probe must have the addresses of the first, or them reversed", line)
		}
		if pk.Quote != 0 && pk.Quote > len(p.Packets) {
			return Probe{}, fmt.Errorf("%q: %s quotes packet %d, which does not come before it", line, pk, pk.Quote)
		}
		p.Packets = append(p.Packets, pk)
	}
	return p, nil
}

// Frame builds packet i of the probe: Packet.Frame, and for an ICMP error
// the quotation of the earlier packet it names.
func (p Probe) Frame(i int) ([]byte, error) {
	pk := p.Packets[i]
	if pk.Quote == 0 {
		return pk.frame(nil)
	}
	if pk.Quote > i {
		return nil, fmt.Errorf("%q quotes packet %d, which does not come before it", pk.String(), pk.Quote)
	}
	q := p.Packets[pk.Quote-1]
	qf, err := p.Frame(pk.Quote - 1)
	if err != nil {
		return nil, err
	}
	return pk.frame(q.quotation(qf))
}
