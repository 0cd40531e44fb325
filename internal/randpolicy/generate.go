package randpolicy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// The label vocabulary is small on purpose: with few keys and values,
// selectors written at random select some endpoints and miss others, which
// is where policy gets interesting.
var (
	labelKeys   = []string{"app", "tier", "env"}
	labelValues = map[string][]string{
		"app":  {"web", "db", "api"},
		"tier": {"front", "back"},
		"env":  {"prod", "dev"},
	}
	nsLabelKeys   = []string{"team", "env"}
	nsLabelValues = map[string][]string{"team": {"a", "b"}, "env": {"prod", "dev"}}
	namespaces    = []string{"x", "y", "z"}
	entities      = []string{"world", "host", "remote-node", "cluster", "all", "kube-apiserver"}
	// namedPortNames name ports whose number and protocol vary per
	// endpoint, so that a named port resolves differently on different
	// destinations.
	namedPortNames = []string{"http", "dns", "metrics", "sig"}
	namedPortNums  = []uint16{53, 80, 443, 8080, 9090}
	protocols      = []string{"TCP", "UDP", "SCTP"}
	// cidrs are the prefixes policies name: outside the cluster, around
	// it, and covering it (a CIDR peer never matches cluster addresses).
	cidrs = []string{
		"0.0.0.0/0", "203.0.113.0/24", "198.51.100.0/24", "198.51.0.0/16",
		"8.8.8.0/24", "10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "100.64.0.0/10",
	}
	// cidrs6 are the IPv6 prefixes: documentation space outside the
	// cluster, prefixes covering the pod and node addresses, NAT64 and the
	// IPv4-mapped space (whose addresses stand for IPv4 ones).
	cidrs6 = []string{
		"::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:ff::/64", "2001:db8::/127",
		"fd00::/8", "fc00::/7", "64:ff9b::/96", "::ffff:0:0/96",
	}
	// icmp6Types are the ICMPv6 types rules name: the errors (1–4), echo
	// request and reply, and neighbour discovery.
	icmp6Types = []uint8{1, 2, 3, 4, 128, 129, 133, 135, 136}
)

// Fixed addresses of the generated cluster.
var (
	podCIDRs      = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00::/64")}
	apiServerAddr = netip.MustParseAddr("172.16.0.1")
	// apiServerAddr6 is the API server's IPv6 address, on some clusters.
	apiServerAddr6 = netip.MustParseAddr("fc00::a:1")
	// UnmanagedAddr is inside the pod CIDR but no endpoint has it.
	UnmanagedAddr = netip.MustParseAddr("10.0.250.9")
	// UnmanagedAddr6 is inside the IPv6 pod CIDR but no endpoint has it.
	UnmanagedAddr6 = netip.MustParseAddr("fd00::fa:9")
)

// Node labels, for nodeSelectors.
var (
	nodeLabelKeys   = []string{"role", "env"}
	nodeLabelValues = map[string][]string{"role": {"worker", "infra"}, "env": {"prod", "dev"}}
)

// Generate returns the configuration of seed. The same seed gives the same
// configuration, and so the same CUE bytes, on every run and platform.
func Generate(seed uint64) *Config {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x65627066))}
	return g.config()
}

type gen struct {
	r *rand.Rand
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) config() *Config {
	c := &Config{PodCIDRs: podCIDRs}
	if g.chance(0.7) {
		c.APIServer = []netip.Addr{apiServerAddr}
		if g.chance(0.5) {
			c.APIServer = append(c.APIServer, apiServerAddr6)
		}
	}
	// Nodes have an IPv4 address and most an IPv6 one too.
	for i := range 2 {
		n := Node{
			Name:   fmt.Sprintf("node-%d", i+1),
			Addrs:  []netip.Addr{netip.AddrFrom4([4]byte{192, 168, 1, byte(i + 1)})},
			Labels: g.labels(nodeLabelKeys, nodeLabelValues, 0.6),
		}
		if g.chance(0.8) {
			n.Addrs = append(n.Addrs, netip.AddrFrom16([16]byte{0: 0xfc, 15: byte(i + 1)}))
		}
		c.Nodes = append(c.Nodes, n)
	}
	nns := 2 + g.r.IntN(2)
	for _, ns := range namespaces[:nns] {
		n := Namespace{Name: ns}
		for _, k := range nsLabelKeys {
			if g.chance(0.6) {
				n.Labels = append(n.Labels, Label{k, g.pick(nsLabelValues[k])})
			}
		}
		c.Namespaces = append(c.Namespaces, n)
	}
	neps := 4 + g.r.IntN(5)
	for i := range neps {
		nsi := g.r.IntN(nns)
		ep := Endpoint{
			Namespace: namespaces[nsi],
			Name:      fmt.Sprintf("e%d", i),
			Node:      c.Nodes[g.r.IntN(2)].Name,
			Labels:    g.labels(labelKeys, labelValues, 0.7),
		}
		// Dual-stack, IPv4 only or IPv6 only.
		v4 := netip.AddrFrom4([4]byte{10, 0, byte(nsi + 1), byte(i + 1)})
		v6 := netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(nsi + 1), 15: byte(i + 1)})
		switch x := g.r.IntN(10); {
		case x < 5:
			ep.Addrs = []netip.Addr{v4, v6}
		case x < 8:
			ep.Addrs = []netip.Addr{v4}
		default:
			ep.Addrs = []netip.Addr{v6}
		}
		for _, name := range namedPortNames {
			if g.chance(0.4) {
				ep.NamedPorts = append(ep.NamedPorts, NamedPort{
					Name: name, Port: namedPortNums[g.r.IntN(len(namedPortNums))], Protocol: g.pick(protocols),
				})
			}
		}
		c.Endpoints = append(c.Endpoints, ep)
	}
	npol := 2 + g.r.IntN(5)
	for i := range npol {
		c.Policies = append(c.Policies, g.policy(c, i))
	}
	// Some clusters protect their nodes too: cluster-wide policies with a
	// nodeSelector, and every node lists the device they attach to.
	if g.chance(0.35) {
		for i := range 1 + g.r.IntN(2) {
			c.Policies = append(c.Policies, g.hostPolicy(c, npol+i))
		}
		for i := range c.Nodes {
			c.Nodes[i].Devices = true
		}
	}
	switch x := g.r.IntN(20); {
	case x < 2:
		c.Enforcement = "always"
	case x < 3:
		c.Enforcement = "never"
	case x < 4:
		c.Enforcement = "default"
	}
	c.Audit = g.chance(0.05)
	return c
}

func (g *gen) labels(keys []string, values map[string][]string, p float64) []Label {
	var out []Label
	for _, k := range keys {
		if g.chance(p) {
			out = append(out, Label{k, g.pick(values[k])})
		}
	}
	return out
}

func (g *gen) policy(c *Config, i int) Policy {
	p := Policy{Name: fmt.Sprintf("p%d", i)}
	if g.chance(0.7) {
		p.Namespace = c.Namespaces[g.r.IntN(len(c.Namespaces))].Name
	}
	p.Selector = g.selector(c)
	g.rules(c, &p)
	return p
}

// hostPolicy returns a cluster-wide policy with a nodeSelector: often
// empty (every node), else one or two terms over the node labels.
func (g *gen) hostPolicy(c *Config, i int) Policy {
	p := Policy{Name: fmt.Sprintf("host%d", i), Host: true}
	if !g.chance(0.4) {
		for range 1 + g.r.IntN(2)*g.r.IntN(2) {
			if g.chance(0.6) {
				k := g.pick(nodeLabelKeys)
				if !slices.ContainsFunc(p.Selector.MatchLabels, func(l Label) bool { return l.Key == k }) {
					p.Selector.MatchLabels = append(p.Selector.MatchLabels, Label{k, g.pick(nodeLabelValues[k])})
				}
			} else {
				k := g.pick(nodeLabelKeys)
				p.Selector.Expressions = append(p.Selector.Expressions, g.expressionOn(k, nodeLabelValues[k]))
			}
		}
	}
	g.rules(c, &p)
	return p
}

// rules fills p's rule lists, each with some chance, and its audit flag.
func (g *gen) rules(c *Config, p *Policy) {
	p.Audit = g.chance(0.15)
	lists := []*[]Rule{&p.Ingress, &p.IngressDeny, &p.Egress, &p.EgressDeny}
	probs := []float64{0.7, 0.3, 0.5, 0.25}
	for li, l := range lists {
		if !g.chance(probs[li]) {
			continue
		}
		n := 1 + g.r.IntN(2)
		if g.chance(0.1) {
			n = 0 // an empty list: no rule, no enforcement
		}
		rules := []Rule{}
		for range n {
			rules = append(rules, g.rule(c))
		}
		*l = rules
	}
}

// selector returns an endpoint selector: often empty (selects
// everything), mostly one term, sometimes two, sometimes restricted to
// namespaces. Few terms keep the chance of selecting some endpoints high.
func (g *gen) selector(c *Config) Selector {
	var s Selector
	if !g.chance(0.3) {
		for range 1 + g.r.IntN(2)*g.r.IntN(2) {
			if g.chance(0.6) {
				k := g.pick(labelKeys)
				if !slices.ContainsFunc(s.MatchLabels, func(l Label) bool { return l.Key == k }) {
					s.MatchLabels = append(s.MatchLabels, Label{k, g.pick(labelValues[k])})
				}
			} else {
				s.Expressions = append(s.Expressions, g.expression())
			}
		}
	}
	if g.chance(0.2) {
		switch {
		case g.chance(0.5):
			ns := Selector{MatchLabels: g.labels(nsLabelKeys, nsLabelValues, 0.4)}
			if g.chance(0.3) {
				ns.Expressions = []Expression{g.nsExpression()}
			}
			s.Namespaces = &ns
		default:
			s.PodNamespace = c.Namespaces[g.r.IntN(len(c.Namespaces))].Name
		}
	}
	return s
}

func (g *gen) expression() Expression {
	k := g.pick(labelKeys)
	return g.expressionOn(k, labelValues[k])
}

func (g *gen) nsExpression() Expression {
	k := g.pick(nsLabelKeys)
	return g.expressionOn(k, nsLabelValues[k])
}

func (g *gen) expressionOn(k string, values []string) Expression {
	e := Expression{Key: k}
	switch g.r.IntN(4) {
	case 0:
		e.Operator = "In"
	case 1:
		e.Operator = "NotIn"
	case 2:
		e.Operator = "Exists"
		return e
	default:
		e.Operator = "DoesNotExist"
		return e
	}
	for _, v := range values {
		if g.chance(0.5) {
			e.Values = append(e.Values, v)
		}
	}
	if len(e.Values) == 0 {
		e.Values = []string{values[0]}
	}
	return e
}

func (g *gen) rule(c *Config) Rule {
	var r Rule
	if g.chance(0.75) {
		kinds := 1 + g.r.IntN(2)
		for range kinds {
			switch g.r.IntN(3) {
			case 0:
				for range 1 + g.r.IntN(2) {
					r.Endpoints = append(r.Endpoints, g.selector(c))
				}
			case 1:
				for range 1 + g.r.IntN(2) {
					r.CIDRs = append(r.CIDRs, g.cidr())
				}
			default:
				for range 1 + g.r.IntN(2) {
					r.Entities = append(r.Entities, g.pick(entities))
				}
			}
		}
		if g.chance(0.04) {
			r.Endpoints, r.EmptyPeers = nil, true
		}
	}
	if g.chance(0.5) {
		for range 1 + g.r.IntN(3) {
			r.Ports = append(r.Ports, g.port())
		}
	}
	if g.chance(0.2) {
		for range 1 + g.r.IntN(2) {
			ic := ICMP{Type: []uint8{0, 3, 8, 11}[g.r.IntN(4)], Code: -1}
			if g.chance(0.5) {
				// ICMPv6: echo request and reply, the errors, and
				// neighbour discovery (which passes without policy).
				ic = ICMP{Type: icmp6Types[g.r.IntN(len(icmp6Types))], Code: -1, V6: true}
			}
			if g.chance(0.5) {
				ic.Code = g.r.IntN(3)
			}
			r.ICMPs = append(r.ICMPs, ic)
		}
	}
	return r
}

func (g *gen) cidr() CIDRSet {
	list := cidrs
	if g.chance(0.4) {
		list = cidrs6
	}
	c := CIDRSet{CIDR: netip.MustParsePrefix(g.pick(list))}
	if g.chance(0.25) {
		c.Plain = true
		return c
	}
	if g.chance(0.5) {
		// One or two exceptions inside the prefix: a random sub-prefix
		// of a random address in it.
		for range 1 + g.r.IntN(2) {
			bits := min(c.CIDR.Bits()+1+g.r.IntN(8), c.CIDR.Addr().BitLen())
			a := randomIn(g.r, c.CIDR)
			x, _ := a.Prefix(bits)
			c.Except = append(c.Except, x)
		}
	}
	return c
}

// randomIn returns a random address inside p, biased towards addresses the
// probes use (so that exceptions and probes meet).
func randomIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	hits := []string{
		"203.0.113.7", "203.0.113.200", "198.51.100.9", "8.8.8.8", "10.0.1.1", "192.168.1.1", "172.16.0.1", "100.64.1.1",
		"2001:db8::7", "2001:db8:1::9", "2001:db8:ff::1", "fd00::1:1", "fc00::1", "64:ff9b::808:808",
	}
	if r.Float64() < 0.6 {
		a := netip.MustParseAddr(hits[r.IntN(len(hits))])
		if p.Contains(a) {
			return a
		}
	}
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		// Randomise the bits of byte i that are past the prefix.
		if fixed := p.Bits() - 8*i; fixed < 8 {
			keep := byte(0)
			if fixed > 0 {
				keep = byte(0xff << (8 - fixed))
			}
			b[i] = b[i]&keep | byte(r.IntN(256))&^keep
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// interestingPorts are the numbers ports and ranges are drawn from: the
// named ports' numbers and their neighbours.
var interestingPorts = []uint16{1, 52, 53, 54, 79, 80, 81, 443, 8080, 8081, 9090, 65535}

func (g *gen) port() Port {
	var p Port
	switch x := g.r.IntN(10); {
	case x < 2:
		p.Name = g.pick(namedPortNames)
	case x < 3:
		// every port of the protocol
	default:
		p.Port = interestingPorts[g.r.IntN(len(interestingPorts))]
		if g.chance(0.3) {
			p.EndPort = addClamped(p.Port, uint16(g.r.IntN(100)))
		}
		p.Quoted = p.EndPort == 0 && g.chance(0.1)
	}
	switch x := g.r.IntN(10); {
	case x < 4:
		p.Protocol = "TCP"
	case x < 6:
		p.Protocol = "UDP"
	case x < 7:
		p.Protocol = "SCTP"
	case x < 8:
		p.Protocol = "ANY"
	}
	return p
}

// addClamped adds without going past the largest port.
func addClamped(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	if s > 65535 {
		return 65535
	}
	return uint16(s)
}
