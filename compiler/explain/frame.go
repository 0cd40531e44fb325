package explain

import (
	"fmt"
	"net"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The frame's MAC addresses, as internal/packettest has them; the
// datapath does not look at them.
var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// payload fills every frame, so that byte counters show a realistic size.
var payload = gopacket.Payload("ebpfc explain payload")

// Frame builds the flow's packet as an Ethernet frame, with lengths and
// checksums filled in. Both peers must have addresses (see Explain, which
// resolves endpoint names first).
func (f *Flow) Frame() ([]byte, error) {
	src, dst := f.Src.Addr, f.Dst.Addr
	if !src.IsValid() || !dst.IsValid() {
		return nil, fmt.Errorf("flow %q: both ends need an address", f.Text)
	}
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC}
	var ip gopacket.NetworkLayer
	var proto layers.IPProtocol
	switch f.Proto {
	case "tcp":
		proto = layers.IPProtocolTCP
	case "udp":
		proto = layers.IPProtocolUDP
	case "sctp":
		proto = layers.IPProtocolSCTP
	case "icmp":
		proto = layers.IPProtocolICMPv4
	case "icmpv6":
		proto = layers.IPProtocolICMPv6
	}
	ls := []gopacket.SerializableLayer{eth}
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip = v4
		ls = append(ls, v4)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip = v6
		ls = append(ls, v6)
	}
	has := func(flag string) bool {
		for _, fl := range f.Flags {
			if fl == flag {
				return true
			}
		}
		return false
	}
	switch f.Proto {
	case "tcp":
		t := &layers.TCP{
			SrcPort: layers.TCPPort(f.Src.Port), DstPort: layers.TCPPort(f.Dst.Port), Window: 1024,
			SYN: has("syn"), ACK: has("ack"), FIN: has("fin"), RST: has("rst"), PSH: has("psh"),
		}
		if t.ACK {
			t.Ack = 1
		}
		_ = t.SetNetworkLayerForChecksum(ip)
		ls = append(ls, t)
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(f.Src.Port), DstPort: layers.UDPPort(f.Dst.Port)}
		_ = u.SetNetworkLayerForChecksum(ip)
		ls = append(ls, u)
	case "sctp":
		ls = append(ls, &layers.SCTP{SrcPort: layers.SCTPPort(f.Src.Port), DstPort: layers.SCTPPort(f.Dst.Port), VerificationTag: 1})
	case "icmp":
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(f.Type, f.Code)})
	case "icmpv6":
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(f.Type, f.Code)}
		_ = i.SetNetworkLayerForChecksum(ip)
		ls = append(ls, i)
	}
	ls = append(ls, payload)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, fmt.Errorf("flow %q: building the packet: %w", f.Text, err)
	}
	return buf.Bytes(), nil
}
