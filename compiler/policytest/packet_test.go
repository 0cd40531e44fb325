package policytest

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// TestPackets decodes each request and reply with gopacket, over IPv4 and
// IPv6: the reply goes the other way and answers the request as a peer
// would (SYN-ACK acking the SYN, INIT-ACK carrying the INIT's tag, echo
// reply with the request's identifier), and every checksum is valid.
func TestPackets(t *testing.T) {
	for _, c := range []struct {
		src, dst string
		protos   []model.Protocol
	}{
		{"10.0.1.11:32800", "10.0.1.20:8080", []model.Protocol{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP, model.ProtoICMP}},
		{"[fd00::11]:32800", "[fd00::20]:8080", []model.Protocol{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP, model.ProtoICMP, model.ProtoICMPv6}},
	} {
		src, dst := netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst)
		for _, proto := range c.protos {
			req := packet{proto: proto, src: src, dst: dst}
			if proto == model.ProtoICMP || proto == model.ProtoICMPv6 {
				req.dst = netip.AddrPortFrom(dst.Addr(), 0)
			}
			for _, p := range []packet{req, req.reply()} {
				b, err := p.frame()
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
				if el := pkt.ErrorLayer(); el != nil {
					t.Fatalf("%s: %v", p, el.Error())
				}
				var ipSrc, ipDst netip.Addr
				var ipProto layers.IPProtocol
				if ip4, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip4 != nil {
					ipSrc, ipDst, ipProto = netip.AddrFrom4([4]byte(ip4.SrcIP.To4())), netip.AddrFrom4([4]byte(ip4.DstIP.To4())), ip4.Protocol
				} else if ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ip6 != nil {
					ipSrc, ipDst, ipProto = netip.AddrFrom16([16]byte(ip6.SrcIP)), netip.AddrFrom16([16]byte(ip6.DstIP)), ip6.NextHeader
				}
				if ipSrc != p.src.Addr() || ipDst != p.dst.Addr() {
					t.Fatalf("%s: IP header %s > %s", p, ipSrc, ipDst)
				}
				checkL4(t, p, pkt, ipSrc, ipDst, ipProto)
			}
		}
	}
	for _, c := range []struct {
		p    packet
		want string
	}{
		{packet{proto: model.ProtoTCP, src: netip.MustParseAddrPort("10.0.1.11:32800"), dst: netip.MustParseAddrPort("10.0.1.20:8080")}.reply(),
			"TCP 10.0.1.20:8080 > 10.0.1.11:32800 SYN-ACK"},
		{packet{proto: model.ProtoTCP, src: netip.MustParseAddrPort("[fd00::11]:32800"), dst: netip.MustParseAddrPort("[fd00::20]:8080")},
			"TCP [fd00::11]:32800 > [fd00::20]:8080 SYN"},
		// ICMP over IPv6 is ICMPv6.
		{packet{proto: model.ProtoICMP, src: netip.MustParseAddrPort("[fd00::11]:32800"), dst: netip.MustParseAddrPort("[fd00::20]:0")}.reply(),
			"ICMPv6 fd00::20 > fd00::11 echo reply id 32800"},
		{packet{proto: model.ProtoUDP, src: netip.MustParseAddrPort("[fd00::11]:32800"), dst: netip.MustParseAddrPort("[fd00::20]:53")},
			"UDP [fd00::11]:32800 > [fd00::20]:53"},
	} {
		if s := c.p.String(); s != c.want {
			t.Errorf("%q, want %q", s, c.want)
		}
	}
}

func checkL4(t *testing.T, p packet, pkt gopacket.Packet, src, dst netip.Addr, proto layers.IPProtocol) {
	t.Helper()
	switch p.proto {
	case model.ProtoTCP:
		tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if uint16(tcp.SrcPort) != p.src.Port() || uint16(tcp.DstPort) != p.dst.Port() || !tcp.SYN || tcp.ACK != p.isReply {
			t.Errorf("%s: TCP %+v", p, tcp)
		}
		if p.isReply && (tcp.Ack != clientISN+1 || tcp.Seq != serverISN) {
			t.Errorf("%s: seq %d ack %d, want %d %d", p, tcp.Seq, tcp.Ack, serverISN, clientISN+1)
		}
		seg := append(append([]byte(nil), tcp.Contents...), tcp.Payload...)
		if proto != layers.IPProtocolTCP || !checksumOK(src, dst, proto, seg) {
			t.Errorf("%s: protocol %s, or a bad TCP checksum", p, proto)
		}
		seg[4]++ // the sequence number
		if checksumOK(src, dst, proto, seg) {
			t.Errorf("%s: checksumOK accepts a changed segment", p)
		}
	case model.ProtoUDP:
		udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if uint16(udp.SrcPort) != p.src.Port() || uint16(udp.DstPort) != p.dst.Port() {
			t.Errorf("%s: UDP %+v", p, udp)
		}
		if proto != layers.IPProtocolUDP || !checksumOK(src, dst, proto, append(udp.Contents, udp.Payload...)) {
			t.Errorf("%s: protocol %s, or a bad UDP checksum", p, proto)
		}
	case model.ProtoSCTP:
		sctp := pkt.Layer(layers.LayerTypeSCTP).(*layers.SCTP)
		wantType, wantTag := layers.SCTPChunkTypeInit, uint32(0)
		layer := layers.LayerTypeSCTPInit
		if p.isReply {
			wantType, wantTag, layer = layers.SCTPChunkTypeInitAck, clientTagBase+32800, layers.LayerTypeSCTPInitAck
		}
		chunk, _ := pkt.Layer(layer).(*layers.SCTPInit)
		if proto != layers.IPProtocolSCTP || uint16(sctp.SrcPort) != p.src.Port() || sctp.VerificationTag != wantTag || chunk == nil || chunk.Type != wantType {
			t.Errorf("%s: protocol %s, SCTP %+v, chunk %+v", p, proto, sctp, chunk)
		}
	case model.ProtoICMP, model.ProtoICMPv6:
		if src.Is6() {
			// ICMPv6 echo request 128, reply 129, identifier after the
			// 4-byte header; the checksum covers the pseudo-header.
			icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			echo, _ := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
			want := uint8(layers.ICMPv6TypeEchoRequest)
			if p.isReply {
				want = layers.ICMPv6TypeEchoReply
			}
			if proto != layers.IPProtocolICMPv6 || icmp == nil || echo == nil || icmp.TypeCode.Type() != want || echo.Identifier != 32800 {
				t.Fatalf("%s: protocol %s, ICMPv6 %+v, echo %+v", p, proto, icmp, echo)
			}
			if !checksumOK(src, dst, proto, append(append([]byte(nil), icmp.Contents...), icmp.Payload...)) {
				t.Errorf("%s: bad ICMPv6 checksum", p)
			}
			return
		}
		icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		want := uint8(layers.ICMPv4TypeEchoRequest)
		if p.isReply {
			want = layers.ICMPv4TypeEchoReply
		}
		if proto != layers.IPProtocolICMPv4 || icmp.TypeCode.Type() != want || icmp.Id != 32800 {
			t.Errorf("%s: protocol %s, ICMP %v id %d", p, proto, icmp.TypeCode, icmp.Id)
		}
	}
}

// checksumOK reports whether the Internet checksum over the pseudo-header
// and the segment (checksum included) is all ones. The IPv4 pseudo-header
// (RFC 793) and the IPv6 one (RFC 8200 8.1: a 32-bit length, three zero
// bytes and the next header) add up to the same sum for segments under
// 64 KiB.
func checksumOK(src, dst netip.Addr, proto layers.IPProtocol, seg []byte) bool {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	add([]byte{0, byte(proto), byte(len(seg) >> 8), byte(len(seg))})
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}
