// Package packettest describes test packets as one line of text, builds them
// with gopacket and checks the verdicts programs give them. Golden cases and
// kernel tests share it, so a case reads the same everywhere:
//
//	to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn => pass cookie=1
//	to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 trunc=40 => drop reason=malformed
//	from_default_web udp 10.0.1.5:5353 > 8.8.8.8:53 => drop
//	to_default_web arp => pass
//
// Options before "=>": syn, trunc=N (cut the frame to N bytes), frag=N
// (fragment offset in 8-byte units; the packet then carries no L4 header),
// mf (more fragments), opts=N (N 4-byte words of IPv4 options), ver=N (a
// bogus IP version), ext=H.H... (IPv6 extension headers in order: hbh, rt,
// dst, and big, a hop-by-hop header whose length runs past the packet). An
// IPv6 packet with frag or mf gets a fragment header after its extension
// headers. After "=>": pass or drop, then optionally cookie=N (the
// rule cookie the verdict must be counted against) and reason=NAME (a drop
// reason, spaces written as dashes).
package packettest

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Case is one packet and the verdict it must get.
type Case struct {
	Line    string
	Program string
	Proto   string // tcp, udp, sctp, icmp, arp
	Src     netip.AddrPort
	Dst     netip.AddrPort
	SYN     bool
	Trunc   int
	Frag    uint16
	MF      bool
	Opts    int
	Ver     int
	Ext     []string // IPv6 extension headers: hbh, rt, dst, big
	// ICMP type and code; an echo request (8/0, or 128/0 for ICMPv6) unless
	// set.
	Type, Code int
	Pass       bool
	Cookie     int // -1 when not checked
	Reason     string
}

// Parse reads one case.
func Parse(line string) (*Case, error) {
	c := &Case{Line: line, Cookie: -1, Ver: -1, Type: -1}
	lhs, rhs, ok := strings.Cut(line, "=>")
	if !ok {
		return nil, fmt.Errorf("%q: missing \"=> pass|drop\"", line)
	}
	f := strings.Fields(lhs)
	if len(f) < 2 {
		return nil, fmt.Errorf("%q: want PROGRAM PROTO [SRC > DST] [OPTIONS] => VERDICT", line)
	}
	c.Program, c.Proto = f[0], f[1]
	f = f[2:]
	switch c.Proto {
	case "tcp", "udp", "sctp", "icmp":
		if len(f) < 3 || f[1] != ">" {
			return nil, fmt.Errorf("%q: want SRC > DST after the protocol", line)
		}
		var err error
		if c.Src, err = addrPort(f[0]); err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		if c.Dst, err = addrPort(f[2]); err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		f = f[3:]
	case "arp":
	default:
		return nil, fmt.Errorf("%q: unknown protocol %q (tcp, udp, sctp, icmp, arp)", line, c.Proto)
	}
	for _, o := range f {
		k, v, _ := strings.Cut(o, "=")
		if k == "ext" {
			for _, h := range strings.Split(v, ".") {
				if _, ok := extHeaders[h]; !ok {
					return nil, fmt.Errorf("%q: unknown extension header %q (hbh, rt, dst, big)", line, h)
				}
				c.Ext = append(c.Ext, h)
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if v != "" && err != nil {
			return nil, fmt.Errorf("%q: option %s: %v", line, o, err)
		}
		switch k {
		case "syn":
			c.SYN = true
		case "mf":
			c.MF = true
		case "trunc":
			c.Trunc = n
		case "frag":
			c.Frag = uint16(n)
		case "opts":
			c.Opts = n
		case "ver":
			c.Ver = n
		case "type":
			c.Type = n
		case "code":
			c.Code = n
		default:
			return nil, fmt.Errorf("%q: unknown option %q", line, o)
		}
	}
	r := strings.Fields(rhs)
	if len(r) == 0 || (r[0] != "pass" && r[0] != "drop") {
		return nil, fmt.Errorf("%q: verdict must be pass or drop", line)
	}
	c.Pass = r[0] == "pass"
	for _, o := range r[1:] {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "cookie":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", line, err)
			}
			c.Cookie = n
		case "reason":
			c.Reason = strings.ReplaceAll(v, "-", " ")
		default:
			return nil, fmt.Errorf("%q: unknown expectation %q", line, o)
		}
	}
	return c, nil
}

func addrPort(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	return netip.AddrPortFrom(a, 0), nil
}

// ParseAll reads one case per non-empty line; lines starting with # are
// comments.
func ParseAll(text string) ([]*Case, error) {
	var cs []*Case
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := Parse(line)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// Build serialises the packet as an Ethernet frame.
func (c *Case) Build() ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	var ls []gopacket.SerializableLayer
	payload := gopacket.Payload("ebpfc test payload")
	if c.Proto == "arp" {
		eth.EthernetType = layers.EthernetTypeARP
		ls = []gopacket.SerializableLayer{eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: srcMAC, SourceProtAddress: []byte{10, 0, 0, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2},
		}}
	} else if c.Src.Addr().Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: c.Src.Addr().AsSlice(), DstIP: c.Dst.Addr().AsSlice()}
		ls = []gopacket.SerializableLayer{eth, ip}
		var l4 []gopacket.SerializableLayer
		if c.Frag == 0 {
			l4 = c.l4(ip)
		}
		// The transport protocol, then each extension header from the
		// last, written with the next header of what follows it.
		next := uint8(c.ipProto())
		if c.Proto == "icmp" {
			next = uint8(layers.IPProtocolICMPv6)
		}
		var ext []byte
		if c.Frag != 0 || c.MF {
			fw := c.Frag << 3
			if c.MF {
				fw |= 1
			}
			ext = append([]byte{next, 0, byte(fw >> 8), byte(fw), 0, 0, 0, 1}, ext...)
			next = 44
		}
		for i := len(c.Ext) - 1; i >= 0; i-- {
			h := c.Ext[i]
			hdr := []byte{next, 0, 1, 4, 0, 0, 0, 0} // PadN fills the 8 bytes
			switch h {
			case "big":
				hdr[1] = 255
			case "rt":
				hdr[2], hdr[3] = 0, 0 // routing type 0, no segments left
			}
			ext = append(hdr, ext...)
			next = extHeaders[h]
		}
		ip.NextHeader = layers.IPProtocol(next)
		if len(ext) > 0 {
			ls = append(ls, gopacket.Payload(ext))
		}
		ls = append(ls, l4...)
		ls = append(ls, payload)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: c.Src.Addr().AsSlice(), DstIP: c.Dst.Addr().AsSlice(), FragOffset: c.Frag}
		if c.MF {
			ip.Flags |= layers.IPv4MoreFragments
		}
		for i := 0; i < c.Opts; i++ {
			// Router alert (type 148, length 4) fills one 4-byte word.
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}})
		}
		ls = []gopacket.SerializableLayer{eth, ip}
		if c.Frag != 0 {
			ip.Protocol = c.ipProto()
		} else {
			ls = append(ls, c.l4(ip)...)
		}
		ls = append(ls, payload)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("%q: %w", c.Line, err)
	}
	b := buf.Bytes()
	if c.Ver >= 0 && eth.EthernetType != layers.EthernetTypeARP {
		b[14] = byte(c.Ver)<<4 | b[14]&0x0f
	}
	if c.Trunc > 0 && c.Trunc < len(b) {
		b = b[:c.Trunc]
	}
	return b, nil
}

// extHeaders are the IPv6 extension headers a case may carry, by name, with
// their next-header numbers.
var extHeaders = map[string]uint8{"hbh": 0, "rt": 43, "dst": 60, "big": 0}

func (c *Case) ipProto() layers.IPProtocol {
	switch c.Proto {
	case "tcp":
		return layers.IPProtocolTCP
	case "udp":
		return layers.IPProtocolUDP
	case "sctp":
		return layers.IPProtocolSCTP
	}
	return layers.IPProtocolICMPv4
}

func (c *Case) l4(ip gopacket.NetworkLayer) []gopacket.SerializableLayer {
	set := func(l interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}) {
		_ = l.SetNetworkLayerForChecksum(ip)
	}
	switch v := ip.(type) {
	case *layers.IPv4:
		v.Protocol = c.ipProto()
	case *layers.IPv6:
		v.NextHeader = c.ipProto()
		if c.Proto == "icmp" {
			v.NextHeader = layers.IPProtocolICMPv6
		}
	}
	switch c.Proto {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(c.Src.Port()), DstPort: layers.TCPPort(c.Dst.Port()), SYN: c.SYN, Window: 1024}
		set(t)
		return []gopacket.SerializableLayer{t}
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(c.Src.Port()), DstPort: layers.UDPPort(c.Dst.Port())}
		set(u)
		return []gopacket.SerializableLayer{u}
	case "sctp":
		return []gopacket.SerializableLayer{&layers.SCTP{SrcPort: layers.SCTPPort(c.Src.Port()), DstPort: layers.SCTPPort(c.Dst.Port()), VerificationTag: 1}}
	}
	if _, ok := ip.(*layers.IPv6); ok {
		typ, code := uint8(layers.ICMPv6TypeEchoRequest), uint8(0)
		if c.Type >= 0 {
			typ, code = uint8(c.Type), uint8(c.Code)
		}
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
		set(i)
		return []gopacket.SerializableLayer{i}
	}
	typ, code := uint8(layers.ICMPv4TypeEchoRequest), uint8(0)
	if c.Type >= 0 {
		typ, code = uint8(c.Type), uint8(c.Code)
	}
	return []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}}
}
