package randpolicy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
)

// MinFrame is the shortest frame a probe is cut to: an Ethernet and an
// IPv4 header. The kernel's BPF_PROG_TEST_RUN refuses shorter tc frames
// that carry the IPv4 EtherType, so they cannot be compared; the programs
// still check for them (the verifier demands it).
const MinFrame = 14 + 20

// MinFrame6 is the shortest IPv6 frame a probe is cut to: an Ethernet and
// an IPv6 header, as for MinFrame.
const MinFrame6 = 14 + 40

// Probes returns n probes for c, deterministically from seed: packets
// between endpoints, and between endpoints and hosts, remote nodes, the API
// server, unmanaged and world addresses (inside and outside the
// configuration's CIDRs and their exceptions), on ports at the edges of the
// configuration's ports and ranges, over IPv4 and IPv6 as the endpoints
// have addresses; packets to and from the nodes' own addresses, for the
// host firewall; some malformed, fragmented, with IPv6 extension headers,
// not IP, or followed by a reply or an ICMP error about them.
func Probes(c *Config, seed uint64, n int) []Probe {
	g := &probeGen{r: rand.New(rand.NewPCG(seed, 0x70726f62)), c: c}
	g.pools()
	out := make([]Probe, 0, n)
	for range n {
		out = append(out, g.probe())
	}
	return out
}

// family holds the addresses of one IP version.
type family struct {
	eps    []netip.Addr // endpoints'
	nodes  []netip.Addr // nodes'
	others []netip.Addr // every peer that is not an endpoint (nodes too)
	icmps  [][2]uint8   // ICMP or ICMPv6 types and codes
}

type probeGen struct {
	r      *rand.Rand
	c      *Config
	v4, v6 family
	ports  []uint16
	hosts  bool // some policy selects nodes
}

func (f *family) usable() bool { return len(f.eps) > 0 }

func (g *probeGen) fam(a netip.Addr) *family {
	if a.Is4() {
		return &g.v4
	}
	return &g.v6
}

func (g *probeGen) pools() {
	taken := map[netip.Addr]bool{} // cluster addresses, which world addresses must not stand for
	for _, ep := range g.c.Endpoints {
		for _, a := range ep.Addrs {
			f := g.fam(a)
			f.eps = append(f.eps, a)
			taken[a] = true
		}
		for _, np := range ep.NamedPorts {
			g.ports = append(g.ports, np.Port)
		}
	}
	for _, n := range g.c.Nodes {
		for _, a := range n.Addrs {
			f := g.fam(a)
			f.nodes = append(f.nodes, a)
			f.others = append(f.others, a)
			taken[a] = true
		}
	}
	for _, p := range g.c.Policies {
		g.hosts = g.hosts || p.Host
	}
	for _, a := range g.c.APIServer {
		g.fam(a).others = append(g.fam(a).others, a)
		taken[a] = true
	}
	g.v4.others = append(g.v4.others, UnmanagedAddr,
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("203.0.113.7"))
	g.v6.others = append(g.v6.others, UnmanagedAddr6,
		netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("2606:4700::1111"), netip.MustParseAddr("64:ff9b::808:808"))
	seen := map[netip.Addr]bool{}
	for _, a := range append(slices.Clone(g.v4.others), g.v6.others...) {
		seen[a] = true
	}
	addWorld := func(a netip.Addr) {
		// An IPv4-mapped IPv6 address stands for the IPv4 address: one
		// that maps a cluster address would be a spoofed endpoint or
		// node, which this test does not send.
		if !seen[a] && !taken[a.Unmap()] {
			seen[a] = true
			f := g.fam(a)
			f.others = append(f.others, a)
		}
	}
	for _, p := range g.c.Policies {
		for _, rules := range [][]Rule{p.Ingress, p.IngressDeny, p.Egress, p.EgressDeny} {
			for _, r := range rules {
				for _, cs := range r.CIDRs {
					g.edges(cs.CIDR, addWorld)
					for _, x := range cs.Except {
						g.edges(x, addWorld)
					}
				}
				for _, pt := range r.Ports {
					for _, v := range []uint16{pt.Port, pt.EndPort} {
						if v != 0 {
							g.ports = append(g.ports, v-1, v, v+1)
						}
					}
				}
				for _, ic := range r.ICMPs {
					code := uint8(max(ic.Code, 0))
					f := &g.v4
					if ic.V6 {
						f = &g.v6
					}
					f.icmps = append(f.icmps, [2]uint8{ic.Type, code}, [2]uint8{ic.Type, code + 1})
				}
			}
		}
	}
	g.ports = append(g.ports, interestingPorts...)
	slices.Sort(g.ports)
	g.ports = slices.Compact(g.ports)
	g.v4.icmps = append(g.v4.icmps, [2]uint8{8, 0}, [2]uint8{0, 0}, [2]uint8{3, 1}, [2]uint8{11, 0})
	g.v6.icmps = append(g.v6.icmps, [2]uint8{128, 0}, [2]uint8{129, 0}, [2]uint8{1, 4}, [2]uint8{2, 0}, [2]uint8{3, 0}, [2]uint8{4, 1})
}

// edges adds addresses at and around the ends of prefix p, and one inside.
func (g *probeGen) edges(p netip.Prefix, add func(netip.Addr)) {
	first := p.Masked().Addr()
	last := lastAddr(p)
	add(first)
	add(last)
	if prev := first.Prev(); prev.IsValid() {
		add(prev)
	}
	if next := last.Next(); next.IsValid() {
		add(next)
	}
	add(randomIn(g.r, p))
}

// lastAddr is the last address of prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		if fixed := p.Bits() - 8*i; fixed < 8 {
			b[i] |= byte(0xff >> max(fixed, 0))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (g *probeGen) pickAddr(xs []netip.Addr) netip.Addr { return xs[g.r.IntN(len(xs))] }

func (g *probeGen) port() uint16 {
	switch x := g.r.IntN(20); {
	case x == 0:
		return uint16(g.r.IntN(65536))
	case x == 1:
		return 0
	}
	return g.ports[g.r.IntN(len(g.ports))]
}

func (g *probeGen) probe() Probe {
	f := &g.v4
	if !g.v4.usable() || g.v6.usable() && g.r.IntN(10) < 4 {
		f = &g.v6
	}
	src, dst := g.addresses(f)
	p := g.packet(f, src, dst)
	v6 := src.Is6()
	switch x := g.r.IntN(100); {
	case x < 3 && !v6:
		return Probe{Packets: []Packet{NewPacket("arp", src, dst, 0, 0)}}
	case x < 3:
		return g.neighbourDiscovery(src, dst)
	case x < 25 && !v6:
		g.malform(&p)
	case x < 25:
		g.malform6(&p)
	case x < 37:
		return g.fragments(p)
	case x < 47:
		return g.connection(src, dst)
	}
	return Probe{Packets: []Packet{p}}
}

// addresses picks a probe's source and destination of one family: two
// different endpoints, an endpoint and another peer, or (for the host
// firewall, more often where a policy selects nodes) a node's own address
// and a peer.
func (g *probeGen) addresses(f *family) (src, dst netip.Addr) {
	hostShare := 1
	if g.hosts {
		hostShare = 3
	}
	x := g.r.IntN(10 + hostShare)
	switch {
	case x >= 10 && len(f.nodes) > 0:
		// A node's own address and any peer but itself: a packet
		// from the host (host_egress) or to it (host_ingress).
		node := g.pickAddr(f.nodes)
		peers := append(slices.Clone(f.eps), f.others...)
		peers = slices.DeleteFunc(peers, func(a netip.Addr) bool { return a == node })
		peer := g.pickAddr(peers)
		if g.r.IntN(2) == 0 {
			return node, peer
		}
		return peer, node
	case x < 6 && len(f.eps) > 1:
		// Two different endpoints: a packet from an endpoint to its own
		// address stays in its network namespace and never crosses its
		// device, so no program sees it.
		i, j := g.r.IntN(len(f.eps)), g.r.IntN(len(f.eps)-1)
		if j >= i {
			j++
		}
		return f.eps[i], f.eps[j]
	case x < 8:
		return g.pickAddr(f.eps), g.pickAddr(f.others)
	}
	return g.pickAddr(f.others), g.pickAddr(f.eps)
}

func (g *probeGen) packet(f *family, src, dst netip.Addr) Packet {
	kinds := []string{"tcp", "tcp", "tcp", "udp", "udp", "sctp", "icmp", "icmp", "ip"}
	p := NewPacket(kinds[g.r.IntN(len(kinds))], src, dst, 0, 0)
	switch p.Kind {
	case "tcp", "udp", "sctp":
		p.SrcPort = uint16(32768 + g.r.IntN(28000))
		p.DstPort = g.port()
		p.SYN = p.Kind == "tcp" && g.r.IntN(4) > 0
	case "icmp":
		tc := f.icmps[g.r.IntN(len(f.icmps))]
		p.Type, p.Code = tc[0], tc[1]
	case "ip":
		p.Proto = []uint8{0, 2, 47, 50, 89, 255}[g.r.IntN(6)]
		if src.Is6() && p.Proto == 0 {
			p.Proto = 59 // IPv6 "no next header"; 0 is hop-by-hop
		}
	}
	return p
}

// fullLen is the length of p's frame before any change to it: Ethernet, IP
// header, the transport header and the payload.
func fullLen(p Packet) int {
	full := 14 + 20 + 18
	if p.IPv6() {
		full = 14 + 40 + 18
	}
	switch p.Kind {
	case "tcp":
		full += 20
	case "udp", "icmp":
		full += 8
	case "sctp":
		full += 12
	}
	if p.IPv6() && p.Kind == "icmp" && p.Type != 128 && p.Type != 129 {
		full -= 4 // ICMPv6's header is 4 bytes, an echo's 8
	}
	return full
}

// malform applies one IPv4 header problem, or IP options or padding (which
// are not problems).
func (g *probeGen) malform(p *Packet) {
	full := fullLen(*p)
	switch g.r.IntN(9) {
	case 0:
		p.Opts = 1 + g.r.IntN(10)
	case 1:
		p.Pad = 1 + g.r.IntN(20)
	case 2:
		p.Opts = g.r.IntN(3)
		full += 4 * p.Opts
		p.Trunc = MinFrame + g.r.IntN(full-MinFrame)
	case 3:
		p.IHL = []int{0, 4, 6, 15}[g.r.IntN(4)]
	case 4:
		p.Ver = []int{0, 5, 6, 15}[g.r.IntN(4)]
	case 5:
		p.TotLen = []int{0, 19, 20, 24, 27, full - 14 - 1, full - 14 + 1, 1500}[g.r.IntN(8)]
	case 6:
		if p.Kind == "tcp" {
			p.TCPOff = []int{0, 4, 6, 15}[g.r.IntN(4)]
		} else {
			p.Trunc = MinFrame + g.r.IntN(full-MinFrame)
		}
	case 7:
		p.Opts = 1 + g.r.IntN(10)
		p.IHL = 5 + g.r.IntN(p.Opts)
	default:
		p.Opts = 1 + g.r.IntN(3)
		p.Trunc = MinFrame + 4*p.Opts + g.r.IntN(6)
	}
}

// extChain returns n random extension headers that are sound.
func (g *probeGen) extChain(n int) []string {
	var out []string
	for range n {
		out = append(out, []string{"hbh", "rt", "dst"}[g.r.IntN(3)])
	}
	return out
}

// malform6 gives an IPv6 packet extension headers — sound, too many, too
// long, or running past the packet — or one header problem, or padding.
func (g *probeGen) malform6(p *Packet) {
	full := fullLen(*p)
	switch g.r.IntN(10) {
	case 0:
		p.Ext = g.extChain(1 + g.r.IntN(3))
	case 1:
		p.Pad = 1 + g.r.IntN(20)
	case 2:
		p.Trunc = MinFrame6 + g.r.IntN(full-MinFrame6)
	case 3:
		// The most headers walked, and one more.
		p.Ext = g.extChain(8 + g.r.IntN(2))
	case 4:
		p.Ver = []int{0, 4, 5, 15}[g.r.IntN(4)]
	case 5:
		p.PLen = []int{0, 3, 7, full - 54 - 1, full - 54 + 1, 1500}[g.r.IntN(6)]
	case 6:
		if p.Kind == "tcp" {
			p.TCPOff = []int{0, 4, 6, 15}[g.r.IntN(4)]
		} else {
			p.Trunc = MinFrame6 + g.r.IntN(full-MinFrame6)
		}
	case 7:
		// The transport header at 1016 bytes, at 1024 (one too far),
		// or further.
		p.Ext = append([]string{"long"}, g.extChain(g.r.IntN(3))...)
	case 8:
		p.Ext = append(g.extChain(g.r.IntN(2)), "big")
	default:
		// Cut inside the extension headers or the transport header.
		p.Ext = g.extChain(1 + g.r.IntN(2))
		p.Trunc = MinFrame6 + g.r.IntN(8*len(p.Ext)+full-MinFrame6)
	}
}

// neighbourDiscovery returns an ICMPv6 neighbour discovery message (types
// 133–137) between the addresses, sometimes as a first fragment (which is
// judged by policy, not exempt).
func (g *probeGen) neighbourDiscovery(src, dst netip.Addr) Probe {
	p := NewPacket("icmp", src, dst, 0, 0)
	p.Type = uint8(133 + g.r.IntN(5))
	if g.r.IntN(4) == 0 {
		p.MF, p.ID = true, uint16(1+g.r.IntN(65535))
	}
	return Probe{Packets: []Packet{p}}
}

// fragments returns a first fragment, a later one, or both, in either
// order, with the same or different identifications; IPv6 fragments
// sometimes behind other extension headers, or an atomic fragment (a
// fragment header with offset 0 and no more fragments).
func (g *probeGen) fragments(p Packet) Probe {
	if p.Kind == "ip" {
		p = NewPacket("udp", p.Src, p.Dst, 40000, g.port())
	}
	p.ID = uint16(1 + g.r.IntN(65535))
	if p.IPv6() {
		switch g.r.IntN(4) {
		case 0:
			p.Ext = g.extChain(1 + g.r.IntN(2))
		case 1:
			p.Ext = append([]string{"frag"}, g.extChain(1)...)
		case 2:
			if g.r.IntN(2) == 0 {
				p.Ext = []string{"frag"}
				return Probe{Packets: []Packet{p}}
			}
		}
	}
	first := p
	first.MF = true
	later := p
	later.Frag = uint16(1 + g.r.IntN(200))
	later.MF = g.r.IntN(2) == 0
	later.SYN = false
	switch g.r.IntN(6) {
	case 0:
		return Probe{Packets: []Packet{first}}
	case 1:
		return Probe{Packets: []Packet{later}}
	case 2:
		later.ID++
		return Probe{Packets: []Packet{first, later}}
	case 3:
		return Probe{Packets: []Packet{later, first}}
	}
	return Probe{Packets: []Packet{first, later}}
}

// connection returns the first packet of a connection and then, the other
// way, a reply, or an ICMP error quoting the first packet (destination
// unreachable, time exceeded, parameter problem; for ICMPv6 packet too big
// too), or the same packet again (the connection established).
func (g *probeGen) connection(src, dst netip.Addr) Probe {
	kinds := []string{"tcp", "tcp", "udp", "udp", "sctp", "icmp", "icmp", "ip"}
	first := NewPacket(kinds[g.r.IntN(len(kinds))], src, dst, 0, 0)
	switch first.Kind {
	case "tcp", "udp", "sctp":
		first.SrcPort = uint16(32768 + g.r.IntN(28000))
		first.DstPort = g.port()
		first.SYN = first.Kind == "tcp"
	case "icmp":
		// An echo request; its identifier stands for the ports.
		if src.Is6() {
			first.Type = 128
		}
	case "ip":
		first.Proto = 47
	}
	reply := first
	reply.Src, reply.Dst = first.Dst, first.Src
	reply.SrcPort, reply.DstPort = first.DstPort, first.SrcPort
	reply.SYN = false
	switch {
	case first.Kind == "icmp" && src.Is6():
		reply.Type = 129
	case first.Kind == "icmp":
		reply.Type = 0
	}
	switch x := g.r.IntN(10); {
	case x < 4:
		return Probe{Packets: []Packet{first, reply}}
	case x < 8 && first.Kind != "ip":
		// An error from the destination about the first packet.
		e := NewPacket("icmp", dst, src, 0, 0)
		e.Quote = 1
		if src.Is6() {
			tc := [][2]uint8{{1, 0}, {1, 1}, {1, 3}, {1, 4}, {2, 0}, {3, 0}, {4, 0}, {4, 1}}[g.r.IntN(8)]
			e.Type, e.Code = tc[0], tc[1]
		} else {
			tc := [][2]uint8{{3, 0}, {3, 1}, {3, 3}, {3, 13}, {11, 0}, {12, 0}}[g.r.IntN(6)]
			e.Type, e.Code = tc[0], tc[1]
		}
		return Probe{Packets: []Packet{first, e}}
	}
	again := first
	again.SYN = false
	return Probe{Packets: []Packet{first, again, reply}}
}
