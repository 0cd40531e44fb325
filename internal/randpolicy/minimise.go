package randpolicy

import (
	"net/netip"
	"slices"
)

// Minimise shrinks x while keep holds, greedily: it tries the candidates
// shrink proposes, in order, takes the first one keep accepts, and goes on
// from the same position in the candidates of the smaller value; it stops
// after a pass in which no candidate was accepted, or after budget calls
// of keep. keep(x) must hold on entry. It returns the smallest value found
// and the number of calls of keep.
//
// This is delta debugging with one-element steps (a "1-minimal" result:
// no single candidate step keeps the property), which suits values of a
// few dozen parts, where each keep is a whole compile and kernel load.
func Minimise[T any](x T, shrink func(T) []T, keep func(T) bool, budget int) (T, int) {
	calls := 0
	for {
		progressed := false
		for i := 0; ; {
			cands := shrink(x)
			if i >= len(cands) {
				break
			}
			if calls >= budget {
				return x, calls
			}
			calls++
			if keep(cands[i]) {
				// The value at i is gone; the next candidate moved
				// into its place, so i stays.
				x, progressed = cands[i], true
				continue
			}
			i++
		}
		if !progressed {
			return x, calls
		}
	}
}

// Case is a configuration and a probe: what the differential test
// minimises.
type Case struct {
	Config *Config
	Probe  Probe
}

// Shrinks returns the cases one step smaller than c, larger steps first:
// without a policy, without settings, without a rule list, a rule, a peer,
// a port, a label, an endpoint (not one the probe is sent from or to), a
// namespace or node without endpoints,
// and the probe without a packet, an IPv6 extension header or an option that
// does not change its addresses.
func (c Case) Shrinks() []Case {
	var out []Case
	edit := func(f func(cfg *Config)) {
		cfg := c.Config.Clone()
		f(cfg)
		out = append(out, Case{cfg, c.Probe})
	}
	cfg := c.Config
	for i := range cfg.Policies {
		edit(func(x *Config) { x.Policies = slices.Delete(x.Policies, i, i+1) })
	}
	if cfg.Enforcement != "" {
		edit(func(x *Config) { x.Enforcement = "" })
	}
	if cfg.Audit {
		edit(func(x *Config) { x.Audit = false })
	}
	for i, p := range cfg.Policies {
		lists := func(x *Config) []*[]Rule {
			q := &x.Policies[i]
			return []*[]Rule{&q.Ingress, &q.IngressDeny, &q.Egress, &q.EgressDeny}
		}
		for li, l := range lists(cfg) {
			if *l != nil {
				edit(func(x *Config) { *lists(x)[li] = nil })
			}
			for ri := range *l {
				edit(func(x *Config) { l := lists(x)[li]; *l = slices.Delete(*l, ri, ri+1) })
			}
		}
		if p.Audit {
			edit(func(x *Config) { x.Policies[i].Audit = false })
		}
		for _, s := range selectorShrinks(p.Selector) {
			edit(func(x *Config) { x.Policies[i].Selector = s })
		}
		for li, l := range lists(cfg) {
			for ri, r := range *l {
				for _, nr := range ruleShrinks(r) {
					edit(func(x *Config) { (*lists(x)[li])[ri] = nr })
				}
			}
		}
	}
	inProbe := func(a netip.Addr) bool { return a == c.Probe.Src() || a == c.Probe.Dst() }
	anyInProbe := func(as []netip.Addr) bool { return slices.ContainsFunc(as, inProbe) }
	for i, ep := range cfg.Endpoints {
		if !anyInProbe(ep.Addrs) {
			edit(func(x *Config) { x.Endpoints = slices.Delete(x.Endpoints, i, i+1) })
		}
	}
	used := map[string]bool{}
	for _, ep := range cfg.Endpoints {
		used[ep.Namespace], used["node:"+ep.Node] = true, true
	}
	for i, ns := range cfg.Namespaces {
		if !used[ns.Name] {
			edit(func(x *Config) { x.Namespaces = slices.Delete(x.Namespaces, i, i+1) })
		}
	}
	for i, n := range cfg.Nodes {
		if !used["node:"+n.Name] && !anyInProbe(n.Addrs) && len(cfg.Nodes) > 1 {
			edit(func(x *Config) { x.Nodes = slices.Delete(x.Nodes, i, i+1) })
		}
	}
	// Addresses the probe does not use, of nodes and endpoints that keep
	// one; node labels.
	for i, n := range cfg.Nodes {
		for j, a := range n.Addrs {
			if len(n.Addrs) > 1 && !inProbe(a) {
				edit(func(x *Config) { x.Nodes[i].Addrs = slices.Delete(x.Nodes[i].Addrs, j, j+1) })
			}
		}
		for j := range n.Labels {
			edit(func(x *Config) { x.Nodes[i].Labels = slices.Delete(x.Nodes[i].Labels, j, j+1) })
		}
	}
	for i, ep := range cfg.Endpoints {
		for j, a := range ep.Addrs {
			if len(ep.Addrs) > 1 && !inProbe(a) {
				edit(func(x *Config) { x.Endpoints[i].Addrs = slices.Delete(x.Endpoints[i].Addrs, j, j+1) })
			}
		}
	}
	for i, ep := range cfg.Endpoints {
		for j := range ep.Labels {
			edit(func(x *Config) { x.Endpoints[i].Labels = slices.Delete(x.Endpoints[i].Labels, j, j+1) })
		}
		for j := range ep.NamedPorts {
			edit(func(x *Config) { x.Endpoints[i].NamedPorts = slices.Delete(x.Endpoints[i].NamedPorts, j, j+1) })
		}
	}
	for i, ns := range cfg.Namespaces {
		for j := range ns.Labels {
			edit(func(x *Config) { x.Namespaces[i].Labels = slices.Delete(x.Namespaces[i].Labels, j, j+1) })
		}
	}
	for j, a := range cfg.APIServer {
		if !inProbe(a) {
			edit(func(x *Config) { x.APIServer = slices.Delete(x.APIServer, j, j+1) })
		}
	}
	for j, pfx := range cfg.PodCIDRs {
		if !pfx.Contains(c.Probe.Src()) && !pfx.Contains(c.Probe.Dst()) && !slices.ContainsFunc(cfg.Endpoints, func(ep Endpoint) bool {
			return slices.ContainsFunc(ep.Addrs, pfx.Contains)
		}) {
			edit(func(x *Config) { x.PodCIDRs = slices.Delete(x.PodCIDRs, j, j+1) })
		}
	}
	for _, p := range probeShrinks(c.Probe) {
		out = append(out, Case{c.Config, p})
	}
	return out
}

func selectorShrinks(s Selector) []Selector {
	var out []Selector
	for j := range s.MatchLabels {
		n := s.clone()
		n.MatchLabels = slices.Delete(n.MatchLabels, j, j+1)
		out = append(out, n)
	}
	for j := range s.Expressions {
		n := s.clone()
		n.Expressions = slices.Delete(n.Expressions, j, j+1)
		out = append(out, n)
	}
	if s.Namespaces != nil {
		n := s.clone()
		n.Namespaces = nil
		out = append(out, n)
		for _, ns := range selectorShrinks(*s.Namespaces) {
			n := s.clone()
			n.Namespaces = &ns
			out = append(out, n)
		}
	}
	if s.PodNamespace != "" {
		n := s.clone()
		n.PodNamespace = ""
		out = append(out, n)
	}
	return out
}

func ruleShrinks(r Rule) []Rule {
	var out []Rule
	one := func(f func(n *Rule)) {
		n := cloneRules([]Rule{r})[0]
		f(&n)
		out = append(out, n)
	}
	for j, s := range r.Endpoints {
		one(func(n *Rule) { n.Endpoints = slices.Delete(n.Endpoints, j, j+1) })
		for _, ss := range selectorShrinks(s) {
			one(func(n *Rule) { n.Endpoints[j] = ss })
		}
	}
	if r.EmptyPeers {
		one(func(n *Rule) { n.EmptyPeers = false })
	}
	for j, cs := range r.CIDRs {
		one(func(n *Rule) { n.CIDRs = slices.Delete(n.CIDRs, j, j+1) })
		for k := range cs.Except {
			one(func(n *Rule) { n.CIDRs[j].Except = slices.Delete(n.CIDRs[j].Except, k, k+1) })
		}
	}
	for j := range r.Entities {
		one(func(n *Rule) { n.Entities = slices.Delete(n.Entities, j, j+1) })
	}
	for j, p := range r.Ports {
		one(func(n *Rule) { n.Ports = slices.Delete(n.Ports, j, j+1) })
		if p.EndPort != 0 {
			one(func(n *Rule) { n.Ports[j].EndPort = 0 })
		}
		if p.Quoted {
			one(func(n *Rule) { n.Ports[j].Quoted = false })
		}
	}
	for j := range r.ICMPs {
		one(func(n *Rule) { n.ICMPs = slices.Delete(n.ICMPs, j, j+1) })
	}
	return out
}

func probeShrinks(p Probe) []Probe {
	var out []Probe
	if len(p.Packets) > 1 {
		for i := range p.Packets {
			out = append(out, Probe{Packets: slices.Delete(slices.Clone(p.Packets), i, i+1)})
		}
	}
	for i, pk := range p.Packets {
		one := func(f func(n *Packet)) {
			n := pk
			f(&n)
			ps := slices.Clone(p.Packets)
			ps[i] = n
			out = append(out, Probe{Packets: ps})
		}
		if pk.SYN {
			one(func(n *Packet) { n.SYN = false })
		}
		if pk.MF && pk.Frag == 0 {
			one(func(n *Packet) { n.MF = false })
		}
		if pk.Pad != 0 {
			one(func(n *Packet) { n.Pad = 0 })
		}
		if pk.Opts != 0 && pk.IHL < 0 && pk.Trunc == 0 {
			one(func(n *Packet) { n.Opts = 0 })
		}
		if pk.ID != 0 && len(p.Packets) == 1 {
			one(func(n *Packet) { n.ID = 0 })
		}
		for j := range pk.Ext {
			one(func(n *Packet) { n.Ext = slices.Delete(slices.Clone(n.Ext), j, j+1) })
		}
	}
	return out
}
