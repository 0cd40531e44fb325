package policytest

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// packet is one packet of a test's connection: the first packet a client
// sends (isReply false) or the server's answer to it. Its addresses are
// both IPv4 or both IPv6; over IPv6, ICMP (and ICMPv6) is an ICMPv6 echo.
type packet struct {
	proto    model.Protocol
	src, dst netip.AddrPort
	isReply  bool
}

// reply returns the answer to p, from its destination back to its source.
func (p packet) reply() packet {
	return packet{proto: p.proto, src: p.dst, dst: p.src, isReply: !p.isReply}
}

// Fixed sequence numbers and tags: packets are the same on every run.
const (
	clientISN = 1000
	serverISN = 5000
	// SCTP initiate tags are derived from the client's port so that two
	// associations never share one.
	clientTagBase = 0x10000
	serverTagBase = 0x20000
)

// is6 reports whether p is an IPv6 packet.
func (p packet) is6() bool { return p.src.Addr().Is6() }

// isEcho reports whether p is an ICMP or ICMPv6 echo.
func (p packet) isEcho() bool { return p.proto == model.ProtoICMP || p.proto == model.ProtoICMPv6 }

// String shows p as "TCP 10.0.0.1:32768 > 10.0.0.2:80 SYN" or
// "ICMPv6 fd00::1 > fd00::2 echo request id 32768".
func (p packet) String() string {
	switch {
	case p.isEcho():
		what := "echo request"
		if p.isReply {
			what = "echo reply"
		}
		icmp := "ICMP"
		if p.is6() {
			icmp = "ICMPv6"
		}
		return fmt.Sprintf("%s %s > %s %s id %d", icmp, p.src.Addr(), p.dst.Addr(), what, p.icmpID())
	case p.proto == model.ProtoTCP:
		if p.isReply {
			return fmt.Sprintf("TCP %s > %s SYN-ACK", p.src, p.dst)
		}
		return fmt.Sprintf("TCP %s > %s SYN", p.src, p.dst)
	case p.proto == model.ProtoSCTP:
		if p.isReply {
			return fmt.Sprintf("SCTP %s > %s INIT-ACK", p.src, p.dst)
		}
		return fmt.Sprintf("SCTP %s > %s INIT", p.src, p.dst)
	}
	return fmt.Sprintf("%s %s > %s", p.proto, p.src, p.dst)
}

// clientPort is the port of the side that opened the connection; an ICMP
// echo carries it as its identifier.
func (p packet) clientPort() uint16 {
	if p.isReply {
		return p.dst.Port()
	}
	return p.src.Port()
}

func (p packet) icmpID() uint16 { return p.clientPort() }

var (
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	serverMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// frame serialises p as an Ethernet frame with an IPv4 or IPv6 header,
// built with gopacket and with correct lengths and checksums.
func (p packet) frame() ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeIPv4}
	if p.isReply {
		eth.SrcMAC, eth.DstMAC = serverMAC, clientMAC
	}
	// setProto sets the IP header's protocol; ip is what the transport
	// checksums cover.
	var ip gopacket.NetworkLayer
	var setProto func(layers.IPProtocol)
	if p.is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		ip, setProto = ip6, func(proto layers.IPProtocol) { ip6.NextHeader = proto }
	} else {
		ip4 := &layers.IPv4{
			Version: 4, TTL: 64, Flags: layers.IPv4DontFragment,
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice(),
		}
		ip, setProto = ip4, func(proto layers.IPProtocol) { ip4.Protocol = proto }
	}
	ls := []gopacket.SerializableLayer{eth, ip.(gopacket.SerializableLayer)}
	payload := gopacket.Payload("ebpfc test")
	switch {
	case p.proto == model.ProtoTCP:
		setProto(layers.IPProtocolTCP)
		t := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()), SYN: true, Seq: clientISN, Window: 64240}
		if p.isReply {
			t.Seq, t.ACK, t.Ack = serverISN, true, clientISN+1
		}
		if err := t.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		ls = append(ls, t)
	case p.proto == model.ProtoUDP:
		setProto(layers.IPProtocolUDP)
		u := &layers.UDP{SrcPort: layers.UDPPort(p.src.Port()), DstPort: layers.UDPPort(p.dst.Port())}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		ls = append(ls, u, payload)
	case p.proto == model.ProtoSCTP:
		setProto(layers.IPProtocolSCTP)
		clientTag := clientTagBase + uint32(p.clientPort())
		s := &layers.SCTP{SrcPort: layers.SCTPPort(p.src.Port()), DstPort: layers.SCTPPort(p.dst.Port())}
		// An INIT carries verification tag 0 (RFC 9260 8.5.1); the
		// INIT-ACK carries the client's initiate tag.
		chunk := &layers.SCTPInit{
			SCTPChunk:   layers.SCTPChunk{Type: layers.SCTPChunkTypeInit},
			InitiateTag: clientTag, AdvertisedReceiverWindowCredit: 65535,
			OutboundStreams: 1, InboundStreams: 1, InitialTSN: clientISN,
		}
		if p.isReply {
			s.VerificationTag = clientTag
			chunk.Type = layers.SCTPChunkTypeInitAck
			chunk.InitiateTag = serverTagBase + uint32(p.clientPort())
			chunk.InitialTSN = serverISN
		}
		ls = append(ls, s, chunk)
	case p.isEcho() && p.is6():
		// ICMPv6 echo request 128, reply 129 (RFC 4443 4.1, 4.2); the
		// checksum covers the IPv6 pseudo-header.
		setProto(layers.IPProtocolICMPv6)
		typ := uint8(layers.ICMPv6TypeEchoRequest)
		if p.isReply {
			typ = layers.ICMPv6TypeEchoReply
		}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		ls = append(ls, icmp, &layers.ICMPv6Echo{Identifier: p.icmpID(), SeqNumber: 1}, payload)
	case p.proto == model.ProtoICMP:
		setProto(layers.IPProtocolICMPv4)
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if p.isReply {
			typ = layers.ICMPv4TypeEchoReply
		}
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: p.icmpID(), Seq: 1}, payload)
	default:
		return nil, fmt.Errorf("cannot build a %s packet", p)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("building %s: %w", p, err)
	}
	return buf.Bytes(), nil
}
