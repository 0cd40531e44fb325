package reference

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// Packet judges one Ethernet frame at endpoint ep in direction dir, as
// docs/policy.md "Packets" says:
//
//   - Frames that are not IPv4 or IPv6 (ARP, and any other EtherType) pass
//     (KindExempt).
//   - IPv4 options (the header length IHL) and IPv6 extension headers
//     (hop-by-hop 0, routing 43, fragment 44, destination options 60, in any
//     order, at most 8 of them, the transport header starting at most 1023
//     bytes into the IPv6 packet) are skipped to reach the transport header.
//   - Headers that are truncated or inconsistent are dropped at an enforced
//     subject (KindMalformed) and pass at an open one. Checked: the Ethernet
//     header is complete; IPv4 has version 4, IHL ≥ 5, the header inside the
//     frame, IHL×4 ≤ total length ≤ the bytes present (trailing padding is
//     allowed); IPv6 has version 6, a complete fixed header, payload length
//     ≤ the bytes present, and every extension header inside the payload; the
//     transport header is complete inside the IP payload: TCP 20 bytes with a
//     data offset ≥ 5 whose options are present, UDP 8, SCTP 12, ICMP 8,
//     ICMPv6 4. Not checked: checksums, option contents, the UDP length
//     field.
//   - A first fragment (offset 0, more-fragments set) is judged by its
//     ports, and its ports and ICMP type and code are remembered by source,
//     destination, protocol and fragment ID; a later fragment (offset > 0)
//     is judged by the remembered ports, or dropped at an enforced subject
//     when there are none (KindFragment). Records are kept for the life of
//     the Evaluator (until ForgetFragments), also after the last fragment,
//     since fragments may arrive out of order. IPv6 fragments are handled
//     the same way, keyed by the 32-bit identification.
//   - ICMPv6 neighbour discovery (types 133–137) passes (KindExempt).
//
// Header drops are not policy denies: audit mode does not turn them into
// audited verdicts.
func (e *Evaluator) Packet(ep *model.Endpoint, dir Direction, frame []byte) Verdict {
	return e.packet(e.endpointSubject(ep), dir, frame)
}

// HostPacket is Packet for node's host (the host firewall). A frame whose
// IP header is sound but whose destination (ingress) or source (egress) is
// not one of the node's addresses is not the host's: at an enforced host it
// passes before any other check (KindNotHost), whatever its later headers
// hold. Frames that are not IP, and neighbour discovery, stay exempt.
func (e *Evaluator) HostPacket(node *model.Node, dir Direction, frame []byte) Verdict {
	return e.packet(subject{node: node}, dir, frame)
}

// ForgetFragments empties the fragment table.
func (e *Evaluator) ForgetFragments() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.frags)
}

// ParseFrame returns the flow an Ethernet frame carries, as Packet reads it.
// ok is false for frames that are not IP; err says what is malformed (the
// flow then still has its addresses when the IP header itself was sound). A
// later fragment's flow has no ports (they are in the fragment table).
func ParseFrame(frame []byte) (f Flow, ok bool, err error) {
	p := parseFrame(frame)
	if p.problem != "" {
		return p.flow, true, fmt.Errorf("%s", p.problem)
	}
	return p.flow, p.status != statusNotIP, nil
}

type fragKey struct {
	src, dst netip.Addr
	proto    uint8
	id       uint32
}

// fragInfo is what the first fragment tells about the rest of a datagram.
type fragInfo struct {
	srcPort, dstPort   uint16
	icmpType, icmpCode uint8
}

func (e *Evaluator) packet(s subject, dir Direction, frame []byte) Verdict {
	p := parseFrame(frame)
	base := Decider{Subject: s.String(), Direction: dir, Rule: -1}
	switch p.status {
	case statusNotIP, statusND:
		base.Kind = KindExempt
		return Verdict{Allowed: true, Enforced: e.isEnforced(s, dir), Decider: base}
	}
	// At a host, a packet whose IP header gives addresses that are not the
	// host's passes before anything else about it is judged.
	if p.addrs && !hostsPacket(s, dir, p.flow) && e.isEnforced(s, dir) {
		return notHost(base)
	}
	switch p.status {
	case statusMalformed:
		return e.headerDrop(s, dir, base, KindMalformed)
	case statusLaterFragment:
		e.mu.Lock()
		info, found := e.frags[p.frag]
		e.mu.Unlock()
		if !found {
			return e.headerDrop(s, dir, base, KindFragment)
		}
		p.flow.SrcPort, p.flow.DstPort = info.srcPort, info.dstPort
		p.flow.ICMPType, p.flow.ICMPCode = info.icmpType, info.icmpCode
	case statusFirstFragment:
		e.mu.Lock()
		e.frags[p.frag] = fragInfo{p.flow.SrcPort, p.flow.DstPort, p.flow.ICMPType, p.flow.ICMPCode}
		e.mu.Unlock()
	}
	return e.decide(s, dir, p.flow)
}

// headerDrop drops a packet whose headers policy cannot judge, at an
// enforced subject; an open subject lets it pass.
func (e *Evaluator) headerDrop(s subject, dir Direction, base Decider, kind Kind) Verdict {
	if !e.isEnforced(s, dir) {
		base.Kind = KindOpen
		return Verdict{Allowed: true, Decider: base}
	}
	base.Kind = kind
	return Verdict{Enforced: true, Decider: base}
}

type packetStatus uint8

const (
	statusFlow packetStatus = iota
	statusNotIP
	statusND
	statusMalformed
	statusFirstFragment
	statusLaterFragment
)

type parsed struct {
	status packetStatus
	flow   Flow
	// addrs: the IP header is sound, so flow's addresses are known (also
	// when a later header is malformed).
	addrs   bool
	frag    fragKey // for fragments
	problem string  // for statusMalformed
}

func malformed(format string, args ...any) parsed {
	return parsed{status: statusMalformed, problem: fmt.Sprintf(format, args...)}
}

// malformed reports a problem found after p's IP header was read: the
// addresses stay known.
func (p parsed) malformed(format string, args ...any) parsed {
	m := malformed(format, args...)
	m.flow = Flow{Src: p.flow.Src, Dst: p.flow.Dst, Protocol: p.flow.Protocol}
	m.addrs = p.addrs
	return m
}

func parseFrame(frame []byte) parsed {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
		return malformed("ethernet: %v", err)
	}
	switch eth.EthernetType {
	case layers.EthernetTypeIPv4:
		return parseIPv4(eth.Payload)
	case layers.EthernetTypeIPv6:
		return parseIPv6(eth.Payload)
	}
	return parsed{status: statusNotIP}
}

// The IP headers are read field by field rather than with gopacket's
// decoders, so that exactly the checks listed on Packet apply: gopacket also
// rejects malformed IPv4 option contents and accepts a total length beyond
// the frame.
func parseIPv4(b []byte) parsed {
	if len(b) < 20 {
		return malformed("IPv4 header truncated: %d bytes", len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return malformed("IPv4 header with version %d", v)
	}
	hlen := int(b[0]&0x0f) * 4
	if hlen < 20 {
		return malformed("IPv4 header length %d < 20", hlen)
	}
	if hlen > len(b) {
		return malformed("IPv4 header length %d beyond the %d bytes present", hlen, len(b))
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < hlen || total > len(b) {
		return malformed("IPv4 total length %d inconsistent (header %d, %d bytes present)", total, hlen, len(b))
	}
	p := parsed{addrs: true, flow: Flow{
		Src:      netip.AddrFrom4([4]byte(b[12:16])),
		Dst:      netip.AddrFrom4([4]byte(b[16:20])),
		Protocol: b[9],
	}}
	fragField := binary.BigEndian.Uint16(b[6:8])
	offset, more := fragField&0x1fff, fragField&0x2000 != 0
	if offset != 0 || more {
		p.frag = fragKey{p.flow.Src, p.flow.Dst, p.flow.Protocol, uint32(binary.BigEndian.Uint16(b[4:6]))}
		if offset != 0 {
			p.status = statusLaterFragment
			return p
		}
		p.status = statusFirstFragment
	}
	return transport(p, b[hlen:total])
}

// The limits of the IPv6 extension-header walk: more extension headers, or
// a transport header (or a later fragment's payload) starting further into
// the IPv6 packet, make the packet malformed.
const (
	maxIPv6ExtHeaders      = 8
	maxIPv6TransportOffset = 1023
)

// IPv6 extension headers skipped to reach the transport header.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6DestOpts = 60
)

func parseIPv6(b []byte) parsed {
	if len(b) < 40 {
		return malformed("IPv6 header truncated: %d bytes", len(b))
	}
	if v := b[0] >> 4; v != 6 {
		return malformed("IPv6 header with version %d", v)
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if 40+plen > len(b) {
		return malformed("IPv6 payload length %d beyond the %d bytes present", plen, len(b)-40)
	}
	p := parsed{addrs: true, flow: Flow{
		Src: netip.AddrFrom16([16]byte(b[8:24])),
		Dst: netip.AddrFrom16([16]byte(b[24:40])),
	}}
	next, payload := b[6], b[40:40+plen]
	for hdrs := 0; ; hdrs++ {
		switch next {
		case ip6HopByHop, ip6Routing, ip6DestOpts, ip6Fragment:
			if hdrs == maxIPv6ExtHeaders {
				return p.malformed("more than %d IPv6 extension headers", maxIPv6ExtHeaders)
			}
			if off := 40 + plen - len(payload); off > maxIPv6TransportOffset {
				return p.malformed("IPv6 extension header at offset %d, beyond %d", off, maxIPv6TransportOffset)
			}
		}
		switch next {
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			if len(payload) < 8 {
				return p.malformed("IPv6 extension header %d truncated: %d bytes", next, len(payload))
			}
			n := (int(payload[1]) + 1) * 8
			if n > len(payload) {
				return p.malformed("IPv6 extension header %d of %d bytes beyond the %d bytes present", next, n, len(payload))
			}
			next, payload = payload[0], payload[n:]
			continue
		case ip6Fragment:
			if len(payload) < 8 {
				return p.malformed("IPv6 fragment header truncated: %d bytes", len(payload))
			}
			fragField := binary.BigEndian.Uint16(payload[2:4])
			offset, more := fragField>>3, fragField&1 != 0
			id := binary.BigEndian.Uint32(payload[4:8])
			next, payload = payload[0], payload[8:]
			if offset != 0 || more {
				p.frag = fragKey{p.flow.Src, p.flow.Dst, next, id}
				if offset != 0 {
					p.flow.Protocol = next
					p.status = statusLaterFragment
					return p
				}
				p.status = statusFirstFragment
			}
			continue
		}
		break
	}
	p.flow.Protocol = next
	if off := 40 + plen - len(payload); off > maxIPv6TransportOffset {
		return p.malformed("IPv6 transport header at offset %d, beyond %d", off, maxIPv6TransportOffset)
	}
	return transport(p, payload)
}

// minTransportHeader is the length of the fixed part of proto's header,
// which must be present; 0 for protocols policy reads nothing from.
func minTransportHeader(proto uint8) int {
	switch proto {
	case protoTCP:
		return 20
	case protoUDP, protoICMP:
		return 8
	case protoSCTP:
		return 12
	case protoICMPv6:
		return 4
	}
	return 0
}

// transport reads the ports (or ICMP type and code) of p's protocol from
// the IP payload b.
func transport(p parsed, b []byte) parsed {
	if need := minTransportHeader(p.flow.Protocol); len(b) < need {
		return p.malformed("protocol %d header truncated: %d bytes, need %d", p.flow.Protocol, len(b), need)
	}
	switch p.flow.Protocol {
	case protoTCP:
		off := int(b[12]>>4) * 4
		if off < 20 || off > len(b) {
			return p.malformed("TCP data offset %d bytes inconsistent (%d bytes present)", off, len(b))
		}
		fallthrough
	case protoUDP, protoSCTP:
		p.flow.SrcPort = binary.BigEndian.Uint16(b[0:2])
		p.flow.DstPort = binary.BigEndian.Uint16(b[2:4])
	case protoICMP:
		p.flow.ICMPType, p.flow.ICMPCode = b[0], b[1]
	case protoICMPv6:
		p.flow.ICMPType, p.flow.ICMPCode = b[0], b[1]
		if p.flow.ICMPType >= 133 && p.flow.ICMPType <= 137 && p.status == statusFlow {
			p.status = statusND
		}
	}
	return p
}
