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

// Probes returns n probes for c, deterministically from seed: packets
// between endpoints, and between endpoints and hosts, remote nodes, the API
// server, unmanaged and world addresses (inside and outside the
// configuration's CIDRs and their exceptions), on ports at the edges of the
// configuration's ports and ranges; some malformed, fragmented or not IP.
func Probes(c *Config, seed uint64, n int) []Probe {
	g := &probeGen{r: rand.New(rand.NewPCG(seed, 0x70726f62)), c: c}
	g.pools()
	out := make([]Probe, 0, n)
	for range n {
		out = append(out, g.probe())
	}
	return out
}

type probeGen struct {
	r      *rand.Rand
	c      *Config
	eps    []netip.Addr
	others []netip.Addr // every peer that is not an endpoint
	ports  []uint16
	icmps  [][2]uint8
}

func (g *probeGen) pools() {
	for _, ep := range g.c.Endpoints {
		g.eps = append(g.eps, ep.Addr)
		for _, np := range ep.NamedPorts {
			g.ports = append(g.ports, np.Port)
		}
	}
	for _, n := range g.c.Nodes {
		g.others = append(g.others, n.Addr)
	}
	if g.c.APIServer.IsValid() {
		g.others = append(g.others, g.c.APIServer)
	}
	g.others = append(g.others, UnmanagedAddr,
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("203.0.113.7"))
	seen := map[netip.Addr]bool{}
	for _, a := range g.others {
		seen[a] = true
	}
	addWorld := func(a netip.Addr) {
		if !seen[a] && a.Is4() {
			seen[a] = true
			g.others = append(g.others, a)
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
					g.icmps = append(g.icmps, [2]uint8{ic.Type, code}, [2]uint8{ic.Type, code + 1})
				}
			}
		}
	}
	g.ports = append(g.ports, interestingPorts...)
	slices.Sort(g.ports)
	g.ports = slices.Compact(g.ports)
	g.icmps = append(g.icmps, [2]uint8{8, 0}, [2]uint8{0, 0}, [2]uint8{3, 1}, [2]uint8{11, 0})
}

// edges adds addresses at and around the ends of prefix p, and one inside.
func (g *probeGen) edges(p netip.Prefix, add func(netip.Addr)) {
	first := p.Addr()
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

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if host > 0 {
		v |= uint32(1)<<host - 1
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
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
	var src, dst netip.Addr
	switch x := g.r.IntN(10); {
	case x < 6 && len(g.eps) > 1:
		// Two different endpoints: a packet from an endpoint to its own
		// address stays in its network namespace and never crosses its
		// device, so no program sees it.
		i, j := g.r.IntN(len(g.eps)), g.r.IntN(len(g.eps)-1)
		if j >= i {
			j++
		}
		src, dst = g.eps[i], g.eps[j]
	case x < 8:
		src, dst = g.pickAddr(g.eps), g.pickAddr(g.others)
	default:
		src, dst = g.pickAddr(g.others), g.pickAddr(g.eps)
	}
	p := g.packet(src, dst)
	switch x := g.r.IntN(100); {
	case x < 3:
		return Probe{Packets: []Packet{NewPacket("arp", src, dst, 0, 0)}}
	case x < 25:
		g.malform(&p)
	case x < 37:
		return g.fragments(p)
	}
	return Probe{Packets: []Packet{p}}
}

func (g *probeGen) packet(src, dst netip.Addr) Packet {
	kinds := []string{"tcp", "tcp", "tcp", "udp", "udp", "sctp", "icmp", "icmp", "ip"}
	p := NewPacket(kinds[g.r.IntN(len(kinds))], src, dst, 0, 0)
	switch p.Kind {
	case "tcp", "udp", "sctp":
		p.SrcPort = uint16(32768 + g.r.IntN(28000))
		p.DstPort = g.port()
		p.SYN = p.Kind == "tcp" && g.r.IntN(4) > 0
	case "icmp":
		tc := g.icmps[g.r.IntN(len(g.icmps))]
		p.Type, p.Code = tc[0], tc[1]
	case "ip":
		p.Proto = []uint8{0, 2, 47, 50, 89, 255}[g.r.IntN(6)]
	}
	return p
}

// malform applies one header problem, or IP options or padding (which are
// not problems).
func (g *probeGen) malform(p *Packet) {
	full := 14 + 20 + 18
	switch p.Kind {
	case "tcp":
		full += 20
	case "udp", "icmp":
		full += 8
	case "sctp":
		full += 12
	}
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

// fragments returns a first fragment, a later one, or both, in either
// order, with the same or different IP identifications.
func (g *probeGen) fragments(p Packet) Probe {
	if p.Kind == "ip" {
		p = NewPacket("udp", p.Src, p.Dst, 40000, g.port())
	}
	p.ID = uint16(1 + g.r.IntN(65535))
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
