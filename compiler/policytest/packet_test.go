package policytest

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// TestPackets decodes each request and reply with gopacket: the reply goes
// the other way and answers the request as a peer would (SYN-ACK acking
// the SYN, INIT-ACK carrying the INIT's tag, echo reply with the request's
// identifier), and every checksum is valid.
func TestPackets(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.1.11:32800")
	dst := netip.MustParseAddrPort("10.0.1.20:8080")
	for _, proto := range []model.Protocol{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP, model.ProtoICMP} {
		req := packet{proto: proto, src: src, dst: dst}
		if proto == model.ProtoICMP {
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
			ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip == nil || netip.AddrFrom4([4]byte(ip.SrcIP.To4())) != p.src.Addr() || netip.AddrFrom4([4]byte(ip.DstIP.To4())) != p.dst.Addr() {
				t.Fatalf("%s: IPv4 header %+v", p, ip)
			}
			checkL4(t, p, pkt, ip)
		}
	}
	if s := (packet{proto: model.ProtoTCP, src: src, dst: dst}).reply().String(); s != "TCP 10.0.1.20:8080 > 10.0.1.11:32800 SYN-ACK" {
		t.Errorf("reply %q", s)
	}
}

func checkL4(t *testing.T, p packet, pkt gopacket.Packet, ip *layers.IPv4) {
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
		if !checksumOK(ip, seg) {
			t.Errorf("%s: bad TCP checksum", p)
		}
		seg[4]++ // the sequence number
		if checksumOK(ip, seg) {
			t.Errorf("%s: checksumOK accepts a changed segment", p)
		}
	case model.ProtoUDP:
		udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if uint16(udp.SrcPort) != p.src.Port() || uint16(udp.DstPort) != p.dst.Port() {
			t.Errorf("%s: UDP %+v", p, udp)
		}
		if !checksumOK(ip, append(udp.Contents, udp.Payload...)) {
			t.Errorf("%s: bad UDP checksum", p)
		}
	case model.ProtoSCTP:
		sctp := pkt.Layer(layers.LayerTypeSCTP).(*layers.SCTP)
		wantType, wantTag := layers.SCTPChunkTypeInit, uint32(0)
		layer := layers.LayerTypeSCTPInit
		if p.isReply {
			wantType, wantTag, layer = layers.SCTPChunkTypeInitAck, clientTagBase+32800, layers.LayerTypeSCTPInitAck
		}
		chunk, _ := pkt.Layer(layer).(*layers.SCTPInit)
		if uint16(sctp.SrcPort) != p.src.Port() || sctp.VerificationTag != wantTag || chunk == nil || chunk.Type != wantType {
			t.Errorf("%s: SCTP %+v, chunk %+v", p, sctp, chunk)
		}
	case model.ProtoICMP:
		icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		want := uint8(layers.ICMPv4TypeEchoRequest)
		if p.isReply {
			want = layers.ICMPv4TypeEchoReply
		}
		if icmp.TypeCode.Type() != want || icmp.Id != 32800 {
			t.Errorf("%s: ICMP %v id %d", p, icmp.TypeCode, icmp.Id)
		}
	}
}

// checksumOK reports whether the Internet checksum over the IPv4
// pseudo-header and the TCP or UDP segment (checksum included) is all
// ones.
func checksumOK(ip *layers.IPv4, seg []byte) bool {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(ip.SrcIP.To4())
	add(ip.DstIP.To4())
	add([]byte{0, byte(ip.Protocol), byte(len(seg) >> 8), byte(len(seg))})
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}
