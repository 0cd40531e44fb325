package randpolicy

import (
	"fmt"
	"net"
	"net/netip"
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
//
// The frame is built with gopacket from the protocol, addresses and ports,
// then the options change it:
//
//	syn       set TCP SYN
//	mf        set IPv4 more-fragments (a first fragment when frag is 0)
//	frag=N    IPv4 fragment offset in 8-byte units; the packet then has
//	          no transport header, only payload
//	id=N      IPv4 identification
//	opts=N    N 4-byte words of IPv4 options (router alert)
//	proto=N   the IPv4 protocol number, for kind "ip"
//	type=N    ICMP type (default 8, echo request)
//	code=N    ICMP code
//	ver=N     overwrite the IP version field
//	ihl=N     overwrite the IPv4 header length field (in words)
//	totlen=N  overwrite the IPv4 total length field
//	tcpoff=N  overwrite the TCP data offset field (in words)
//	pad=N     append N zero bytes after the IP packet (Ethernet padding)
//	trunc=N   cut the frame to N bytes
//
// The fields ver, ihl, totlen, tcpoff and trunc make malformed packets;
// checksums are not recomputed after them, as policy reads none.
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
	Ver, IHL         int   // -1: not overwritten
	TotLen, TCPOff   int   // -1: not overwritten
	Pad, Trunc       int   // 0: none
}

// NewPacket returns a packet of kind between two addresses with no
// options set.
func NewPacket(kind string, src, dst netip.Addr, sport, dport uint16) Packet {
	return Packet{Kind: kind, Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Type: 8, Ver: -1, IHL: -1, TotLen: -1, TCPOff: -1}
}

// hasPorts reports whether the packet's line carries ports.
func (p Packet) hasPorts() bool {
	return p.Kind == "tcp" || p.Kind == "udp" || p.Kind == "sctp"
}

// Malformed reports whether an option makes the packet's headers
// malformed or truncated (padding does not).
func (p Packet) Malformed() bool {
	return p.Ver >= 0 || p.IHL >= 0 || p.TotLen >= 0 || p.TCPOff >= 0 || p.Trunc > 0
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
	num(p.Ver >= 0, "ver", p.Ver)
	num(p.IHL >= 0, "ihl", p.IHL)
	num(p.TotLen >= 0, "totlen", p.TotLen)
	num(p.TCPOff >= 0, "tcpoff", p.TCPOff)
	num(p.Pad != 0, "pad", p.Pad)
	num(p.Trunc != 0, "trunc", p.Trunc)
	return b.String()
}

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
		if !ap.Addr().Is4() {
			return Packet{}, fmt.Errorf("%q: %s is not an IPv4 address", line, ap.Addr())
		}
		if i == 0 {
			p.Src, p.SrcPort = ap.Addr(), ap.Port()
		} else {
			p.Dst, p.DstPort = ap.Addr(), ap.Port()
		}
	}
	for _, o := range f[4:] {
		k, v, hasValue := strings.Cut(o, "=")
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
		case "ver":
			p.Ver = n
		case "ihl":
			p.IHL = n
		case "totlen":
			p.TotLen = n
		case "tcpoff":
			p.TCPOff = n
		case "pad":
			p.Pad = n
		case "trunc":
			p.Trunc = n
		default:
			return Packet{}, fmt.Errorf("%q: unknown option %q", line, o)
		}
		if (k == "proto" || k == "type" || k == "code") && n > 255 || k == "opts" && n > 10 || (k == "ver" || k == "ihl" || k == "tcpoff") && n > 15 {
			return Packet{}, fmt.Errorf("%q: option %s out of range", line, o)
		}
	}
	return p, nil
}

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// payload is what every packet carries after its headers.
var payload = gopacket.Payload("ebpfc differential")

// Frame builds the packet as an Ethernet frame.
func (p Packet) Frame() ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	var ls []gopacket.SerializableLayer
	if p.Kind == "arp" {
		eth.EthernetType = layers.EthernetTypeARP
		ls = []gopacket.SerializableLayer{eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: srcMAC, SourceProtAddress: p.Src.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: p.Dst.AsSlice(),
		}}
	} else {
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
		if p.Frag == 0 {
			if l4 := p.transport(ip); l4 != nil {
				ls = append(ls, l4)
			}
		}
		ls = append(ls, payload)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("%q: %w", p.String(), err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if p.Kind != "arp" {
		const ipOff = 14
		hlen := 20 + 4*p.Opts
		if p.Ver >= 0 {
			b[ipOff] = byte(p.Ver)<<4 | b[ipOff]&0x0f
		}
		if p.IHL >= 0 {
			b[ipOff] = b[ipOff]&0xf0 | byte(p.IHL)
		}
		if p.TotLen >= 0 {
			b[ipOff+2], b[ipOff+3] = byte(p.TotLen>>8), byte(p.TotLen)
		}
		if p.TCPOff >= 0 && p.Kind == "tcp" && p.Frag == 0 {
			i := ipOff + hlen + 12
			b[i] = byte(p.TCPOff)<<4 | b[i]&0x0f
		}
	}
	b = append(b, make([]byte, p.Pad)...)
	if p.Trunc > 0 && p.Trunc < len(b) {
		b = b[:p.Trunc]
	}
	return b, nil
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
		return layers.IPProtocolICMPv4
	}
	return layers.IPProtocol(p.Proto)
}

func (p Packet) transport(ip *layers.IPv4) gopacket.SerializableLayer {
	switch p.Kind {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort), SYN: p.SYN, Window: 1024}
		_ = t.SetNetworkLayerForChecksum(ip)
		return t
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
		_ = u.SetNetworkLayerForChecksum(ip)
		return u
	case "sctp":
		return &layers.SCTP{SrcPort: layers.SCTPPort(p.SrcPort), DstPort: layers.SCTPPort(p.DstPort), VerificationTag: 1}
	case "icmp":
		return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.Type, p.Code)}
	}
	return nil
}

// Probe is one or more packets from one address to another, sent in order
// into a datapath whose state was cleared before the first. Its line joins
// the packets' lines with " ; ".
type Probe struct {
	Packets []Packet
}

// Src and Dst are the addresses of the probe's first packet; every packet
// of a probe has the same.
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

// ParseProbe reads a probe line.
func ParseProbe(line string) (Probe, error) {
	var p Probe
	for _, part := range strings.Split(line, ";") {
		pk, err := ParsePacket(strings.TrimSpace(part))
		if err != nil {
			return Probe{}, err
		}
		if len(p.Packets) > 0 && (pk.Src != p.Src() || pk.Dst != p.Dst()) {
			return Probe{}, fmt.Errorf("%q: every packet of a probe must have the addresses of the first", line)
		}
		p.Packets = append(p.Packets, pk)
	}
	return p, nil
}
