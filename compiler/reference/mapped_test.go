package reference

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// A CIDR of IPv4-mapped IPv6 addresses (::ffff:0:0/96 and longer) stands
// for the IPv4 prefix, as a mapped address stands for the IPv4 address: it
// matches IPv4 peers and mapped ones, and its exceptions likewise.
func TestMappedPrefixes(t *testing.T) {
	const mapped = `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromCIDRSet: [{cidr: "::ffff:0.0.0.0/96", except: ["::ffff:92.0.0.0/104"]}]}]
}
`
	runCases(t, []policyCase{{"mapped", mapped, []query{
		in("tcp 8.8.8.8 > 10.0.1.1:80", "allow by web/p ingress[0]"),
		in("tcp ::ffff:8.8.8.8 > [fd00:10::1]:80", "allow by web/p ingress[0]"),
		in("tcp 92.1.2.3 > 10.0.1.1:80", "deny by default"),
		in("tcp ::ffff:92.1.2.3 > [fd00:10::1]:80", "deny by default"),
		in("tcp 2001:db8::1 > [fd00:10::1]:80", "deny by default"),
	}}})
}

// The extension-header limits (count, offset) are problems of later
// headers: the IPv6 header itself is sound, so at a host a packet that is
// not the host's passes as such, like one whose extension header is cut
// short.
func TestHostExtensionLimits(t *testing.T) {
	e := New(loadConfig(t, hostPolicy))
	node := nodeByName(t, e.Config(), "node-a")
	frame := func(src, dst string, exts int) []byte {
		eth := &layers.Ethernet{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice(), NextHeader: layers.IPProtocolIPv6HopByHop}
		var ext []byte
		for i := range exts {
			next := byte(0)
			if i == exts-1 {
				next = byte(layers.IPProtocolUDP)
			}
			ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0)
		}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, ip, gopacket.Payload(ext), udp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, tc := range []struct {
		src, dst string
		exts     int
		want     string
	}{
		{"fd00:10::1", "2001:db8::1", 8, "allow not-host"},
		{"fd00::1", "2001:db8::1", 8, "allow by workers egress[0]"},
		{"fd00:10::1", "2001:db8::1", 9, "allow not-host"},
		{"fd00::1", "2001:db8::1", 9, "deny malformed"},
	} {
		if got := summary(e.HostPacket(node, Egress, frame(tc.src, tc.dst, tc.exts))); got != tc.want {
			t.Errorf("%s > %s with %d extension headers: %s, want %s", tc.src, tc.dst, tc.exts, got, tc.want)
		}
	}
}
