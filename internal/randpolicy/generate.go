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
)

// Fixed addresses of the generated cluster.
var (
	podCIDR       = netip.MustParsePrefix("10.0.0.0/16")
	apiServerAddr = netip.MustParseAddr("172.16.0.1")
	// UnmanagedAddr is inside the pod CIDR but no endpoint has it.
	UnmanagedAddr = netip.MustParseAddr("10.0.250.9")
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
	c := &Config{PodCIDR: podCIDR}
	if g.chance(0.7) {
		c.APIServer = apiServerAddr
	}
	c.Nodes = []Node{
		{Name: "node-1", Addr: netip.MustParseAddr("192.168.1.1")},
		{Name: "node-2", Addr: netip.MustParseAddr("192.168.1.2")},
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
			Addr:      netip.AddrFrom4([4]byte{10, 0, byte(nsi + 1), byte(i + 1)}),
			Labels:    g.labels(labelKeys, labelValues, 0.7),
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
	return p
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
	if g.chance(0.15) {
		for range 1 + g.r.IntN(2) {
			ic := ICMP{Type: []uint8{0, 3, 8, 11}[g.r.IntN(4)], Code: -1}
			if g.chance(0.5) {
				ic.Code = g.r.IntN(3)
			}
			r.ICMPs = append(r.ICMPs, ic)
		}
	}
	return r
}

func (g *gen) cidr() CIDRSet {
	c := CIDRSet{CIDR: netip.MustParsePrefix(g.pick(cidrs))}
	if g.chance(0.25) {
		c.Plain = true
		return c
	}
	if g.chance(0.5) {
		// One or two exceptions inside the prefix: a random sub-prefix
		// of a random address in it.
		for range 1 + g.r.IntN(2) {
			bits := c.CIDR.Bits() + 1 + g.r.IntN(8)
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
	hits := []string{"203.0.113.7", "203.0.113.200", "198.51.100.9", "8.8.8.8", "10.0.1.1", "192.168.1.1", "172.16.0.1", "100.64.1.1"}
	if r.Float64() < 0.6 {
		a := netip.MustParseAddr(hits[r.IntN(len(hits))])
		if p.Contains(a) {
			return a
		}
	}
	b := p.Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if host > 0 {
		v |= r.Uint32() & (1<<host - 1)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
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
