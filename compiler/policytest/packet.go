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
// sends (isReply false) or the server's answer to it.
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

// String shows p as "TCP 10.0.0.1:32768 > 10.0.0.2:80 SYN".
func (p packet) String() string {
	switch p.proto {
	case model.ProtoICMP:
		what := "echo request"
		if p.isReply {
			what = "echo reply"
		}
		return fmt.Sprintf("ICMP %s > %s %s id %d", p.src.Addr(), p.dst.Addr(), what, p.icmpID())
	case model.ProtoTCP:
		if p.isReply {
			return fmt.Sprintf("TCP %s > %s SYN-ACK", p.src, p.dst)
		}
		return fmt.Sprintf("TCP %s > %s SYN", p.src, p.dst)
	case model.ProtoSCTP:
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

// frame serialises p as an Ethernet frame with an IPv4 header, built with
// gopacket and with correct lengths and checksums.
func (p packet) frame() ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeIPv4}
	if p.isReply {
		eth.SrcMAC, eth.DstMAC = serverMAC, clientMAC
	}
	ip := &layers.IPv4{
		Version: 4, TTL: 64, Flags: layers.IPv4DontFragment,
		SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice(),
	}
	ls := []gopacket.SerializableLayer{eth, ip}
	payload := gopacket.Payload("ebpfc test")
	switch p.proto {
	case model.ProtoTCP:
		ip.Protocol = layers.IPProtocolTCP
		t := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()), SYN: true, Seq: clientISN, Window: 64240}
		if p.isReply {
			t.Seq, t.ACK, t.Ack = serverISN, true, clientISN+1
		}
		if err := t.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		ls = append(ls, t)
	case model.ProtoUDP:
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(p.src.Port()), DstPort: layers.UDPPort(p.dst.Port())}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		ls = append(ls, u, payload)
	case model.ProtoSCTP:
		ip.Protocol = layers.IPProtocolSCTP
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
	case model.ProtoICMP:
		ip.Protocol = layers.IPProtocolICMPv4
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if p.isReply {
			typ = layers.ICMPv4TypeEchoReply
		}
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: p.icmpID(), Seq: 1}, payload)
	default:
		return nil, fmt.Errorf("cannot build a %s packet", p.proto)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("building %s: %w", p, err)
	}
	return buf.Bytes(), nil
}
