package reference

import (
	"encoding/binary"
	"testing"
)

// hostPolicy selects node-a (role worker) only: SSH from a documentation
// prefix, the kubelet from the cluster, ICMP echo from anywhere; egress DNS
// to the world; and an ingress deny of one address.
const hostPolicy = `clusterPolicies: workers: {
	nodeSelector: matchLabels: role: "worker"
	ingress: [
		{fromCIDR: ["198.51.100.0/24"], toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]},
		{fromEntities: ["cluster"], toPorts: [{ports: [{port: 10250, protocol: "TCP"}]}]},
		{icmps: [{fields: [{type: 8}]}]},
	]
	ingressDeny: [{fromCIDR: ["198.51.100.66/32"]}]
	egress: [{toEntities: ["world"], toPorts: [{ports: [{port: 53, protocol: "UDP"}]}]}]
}
`

// A host judges only its own packets: those addressed to one of its
// addresses (ingress) or sent from one (egress). Packets routed through the
// node to its endpoints or elsewhere are not the host's.
func TestHostOwnPackets(t *testing.T) {
	runCases(t, []policyCase{{"selected", hostPolicy, []query{
		{"node:node-a", Ingress, "tcp 198.51.100.7 > 192.168.0.1:22", "allow by workers ingress[0]"},
		{"node:node-a", Ingress, "tcp 198.51.100.66 > 192.168.0.1:22", "deny by workers ingressDeny[0]"},
		{"node:node-a", Ingress, "tcp 198.51.100.7 > 192.168.0.1:23", "deny by default"},
		{"node:node-a", Ingress, "tcp 192.168.0.2 > 192.168.0.1:10250", "allow by workers ingress[1]"},
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:10250", "deny by default"},
		{"node:node-a", Ingress, "icmp 8.8.8.8 > 192.168.0.1 8/0", "allow by workers ingress[2]"},
		// The node's IPv6 address is the host's too.
		{"node:node-a", Ingress, "tcp 8.8.8.8 > [fd00::1]:23", "deny by default"},
		// To an endpoint on the node, to another node, to the world.
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 10.0.1.1:23", "allow not-host"},
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.2:23", "allow not-host"},
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 1.1.1.1:23", "allow not-host"},
		// The ingress deny applies to the host's packets only.
		{"node:node-a", Ingress, "tcp 198.51.100.66 > 10.0.1.1:22", "allow not-host"},
		{"node:node-a", Egress, "udp 192.168.0.1 > 8.8.8.8:53", "allow by workers egress[0]"},
		{"node:node-a", Egress, "udp 192.168.0.1 > 8.8.8.8:54", "deny by default"},
		{"node:node-a", Egress, "udp 10.0.1.1 > 8.8.8.8:54", "allow not-host"},
		// node-b is not selected: open.
		{"node:node-b", Ingress, "tcp 8.8.8.8 > 192.168.0.2:23", "allow open"},
		{"node:node-b", Egress, "tcp 192.168.0.2 > 8.8.8.8:23", "allow open"},
	}}})
}

// Enforcement "always" enforces a selected host in both directions but
// leaves hosts no policy selects open; "never" opens every host.
func TestHostEnforcement(t *testing.T) {
	const ingressOnly = `clusterPolicies: ssh: {
	nodeSelector: matchLabels: role: "worker"
	ingress: [{toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]}]
}
`
	runCases(t, []policyCase{
		{"default", ingressOnly, []query{
			{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:23", "deny by default"},
			{"node:node-a", Egress, "tcp 192.168.0.1 > 8.8.8.8:23", "allow open"},
			// An open direction lets every packet pass, the host's or not.
			{"node:node-a", Egress, "tcp 10.0.1.1 > 8.8.8.8:23", "allow open"},
		}},
		{"always", ingressOnly + `settings: enforcement: "always"`, []query{
			{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:22", "allow by ssh ingress[0]"},
			{"node:node-a", Egress, "tcp 192.168.0.1 > 8.8.8.8:23", "deny by default"},
			{"node:node-a", Egress, "tcp 10.0.1.1 > 8.8.8.8:23", "allow not-host"},
			{"node:node-b", Ingress, "tcp 8.8.8.8 > 192.168.0.2:23", "allow open"},
		}},
		{"never", ingressOnly + `settings: enforcement: "never"`, []query{
			{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:23", "allow open"},
		}},
	})
}

// At a host, whether a frame is the host's is decided from a sound IP
// header before the rest: a routed packet with a broken transport header
// or an unknown fragment passes, one for the host is dropped.
func TestHostPacket(t *testing.T) {
	e := New(loadConfig(t, hostPolicy))
	nodeA := nodeByName(t, e.Config(), "node-a")
	nodeB := nodeByName(t, e.Config(), "node-b")
	// cutTCP leaves 10 bytes of TCP header, with a total length that
	// agrees: the IP header is sound, the TCP header truncated.
	cutTCP := func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[ethLen+2:], ip4Len+10)
		return b[:ethLen+ip4Len+10]
	}
	badVersion := func(b []byte) []byte { b[ethLen] = 0x55; return b }
	for _, q := range []struct {
		name  string
		node  string
		dir   Direction
		frame func(t *testing.T) []byte
		want  string
	}{
		{"ssh", "node-a", Ingress, frame(pkt{src: "198.51.100.7", dst: "192.168.0.1", proto: "tcp", sport: 40000, dport: 22}), "allow by workers ingress[0]"},
		{"telnet", "node-a", Ingress, frame(pkt{src: "198.51.100.7", dst: "192.168.0.1", proto: "tcp", sport: 40000, dport: 23}), "deny by default"},
		{"routed to a pod", "node-a", Ingress, frame(pkt{src: "198.51.100.7", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 23}), "allow not-host"},
		{"cut TCP to the host", "node-a", Ingress, mutate(pkt{src: "198.51.100.7", dst: "192.168.0.1", proto: "tcp", sport: 40000, dport: 22}, cutTCP), "deny malformed"},
		{"cut TCP routed", "node-a", Ingress, mutate(pkt{src: "198.51.100.7", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 22}, cutTCP), "allow not-host"},
		// A bad IP header gives no addresses to trust: dropped.
		{"bad version routed", "node-a", Ingress, mutate(pkt{src: "198.51.100.7", dst: "10.0.1.1", proto: "tcp", sport: 40000, dport: 22}, badVersion), "deny malformed"},
		{"later fragment to the host", "node-a", Ingress, frame(pkt{src: "198.51.100.7", dst: "192.168.0.1", proto: "tcp", id: 7, fragOff: 100, noL4: true}), "deny fragment"},
		{"later fragment routed", "node-a", Ingress, frame(pkt{src: "198.51.100.7", dst: "10.0.1.1", proto: "tcp", id: 7, fragOff: 100, noL4: true}), "allow not-host"},
		{"arp", "node-a", Ingress, frame(pkt{proto: "arp"}), "allow exempt"},
		{"dns out", "node-a", Egress, frame(pkt{src: "192.168.0.1", dst: "8.8.8.8", proto: "udp", sport: 40000, dport: 53}), "allow by workers egress[0]"},
		{"pod's packet out", "node-a", Egress, frame(pkt{src: "10.0.1.1", dst: "8.8.8.8", proto: "udp", sport: 40000, dport: 54}), "allow not-host"},
		{"unselected node", "node-b", Ingress, mutate(pkt{src: "198.51.100.7", dst: "192.168.0.2", proto: "tcp", sport: 40000, dport: 22}, cutTCP), "allow open"},
	} {
		n := nodeA
		if q.node == "node-b" {
			n = nodeB
		}
		if got := summary(e.HostPacket(n, q.dir, q.frame(t))); got != q.want {
			t.Errorf("%s at node:%s %s: %s, want %s", q.name, q.node, q.dir, got, q.want)
		}
	}
}
