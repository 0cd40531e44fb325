package reference

import (
	"net/netip"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// peerClass is the class of a peer address, as docs/policy.md "Who is the
// peer" lists them.
type peerClass uint8

const (
	classEndpoint peerClass = iota
	classHost
	classRemoteNode
	classKubeAPIServer
	classUnmanaged
	classWorld
)

// peer is the other side of a flow, classified from the subject's node.
type peer struct {
	addr  netip.Addr
	class peerClass
	ep    *model.Endpoint // for classEndpoint
}

// classify decides the class of address a from the point of view of node
// (the subject's node; nil when unknown, so nothing is host), in the order
// the table in docs/policy.md gives.
func (e *Evaluator) classify(a netip.Addr, node *model.Node) peer {
	a = norm(a)
	p := peer{addr: a}
	if ep := e.endpoints[a]; ep != nil {
		p.class, p.ep = classEndpoint, ep
		return p
	}
	if n := e.nodeOf[a]; n != nil {
		p.class = classRemoteNode
		if node != nil && n.Name == node.Name {
			p.class = classHost
		}
		return p
	}
	if e.apiServer[a] {
		p.class = classKubeAPIServer
		return p
	}
	for _, pfx := range e.cfg.Cluster.PodCIDRs {
		if pfx.Contains(a) {
			p.class = classUnmanaged
			return p
		}
	}
	p.class = classWorld
	return p
}

// selects reports whether policy p selects subject s: an endpoint selector
// for an endpoint (in the policy's namespace when the policy is namespaced),
// a node selector for a host.
func (e *Evaluator) selects(p *model.Policy, s subject) bool {
	if s.ep == nil {
		return p.NodeSelector != nil && s.node != nil && p.NodeSelector.Matches(s.node.Labels)
	}
	if p.EndpointSelector == nil {
		return false
	}
	if !p.ClusterWide && p.Namespace != s.ep.Namespace {
		return false
	}
	return e.selectorMatches(p.EndpointSelector, s.ep, "")
}

// selectorMatches reports whether endpoint selector sel matches ep. The
// namespace must match too: sel's namespace selector when it has one, else
// the namespace scope (the namespaced policy's namespace) when not empty.
func (e *Evaluator) selectorMatches(sel *model.Selector, ep *model.Endpoint, scope string) bool {
	if sel.Namespaces != nil {
		if !sel.Namespaces.Matches(e.namespaceLabels(ep.Namespace)) {
			return false
		}
	} else if scope != "" && ep.Namespace != scope {
		return false
	}
	return sel.Matches(ep.Labels)
}

// selecting returns the policies that select s, in configuration order
// (which is the cookie order: namespaced by namespace and name, then
// cluster-wide by name).
func (e *Evaluator) selecting(s subject) []*model.Policy {
	var out []*model.Policy
	for _, p := range e.cfg.Policies {
		if e.selects(p, s) {
			out = append(out, p)
		}
	}
	return out
}

// enforced reports whether subject s, selected by pols, is in default deny
// in direction dir. The host firewall is opt-in per node: a host that no
// policy selects is open, also under enforcement "always".
func (e *Evaluator) enforced(s subject, pols []*model.Policy, dir Direction) bool {
	switch {
	case e.enforceOff:
		return false
	case s.ep == nil && len(pols) == 0:
		return false
	case e.enforceAll:
		return true
	}
	for _, p := range pols {
		if p.Enforces(dir == Egress) {
			return true
		}
	}
	return false
}

// isEnforced reports whether subject s is in default deny in direction dir.
func (e *Evaluator) isEnforced(s subject, dir Direction) bool {
	return e.enforced(s, e.selecting(s), dir)
}

// hostsPacket reports whether flow f, crossing subject s in direction dir,
// is the subject's own traffic. For an endpoint every packet at its device
// is. For a host, ingress packets must be addressed to one of the node's
// addresses and egress packets sent from one: a packet routed through the
// node's devices to or from an endpoint, or to another machine, is not the
// host's, and the host firewall lets it pass unjudged (KindNotHost).
func hostsPacket(s subject, dir Direction, f Flow) bool {
	if s.ep != nil {
		return true
	}
	a := f.Dst
	if dir == Egress {
		a = f.Src
	}
	a = norm(a)
	for _, x := range s.node.Addresses {
		if norm(x) == a {
			return true
		}
	}
	return false
}

// notHost is the verdict for a packet at an enforced host that is not the
// host's own (see hostsPacket).
func notHost(base Decider) Verdict {
	base.Kind = KindNotHost
	return Verdict{Allowed: true, Enforced: true, Decider: base}
}

func allowRules(p *model.Policy, dir Direction) []*model.Rule {
	if dir == Egress {
		return p.Egress
	}
	return p.Ingress
}

func denyRules(p *model.Policy, dir Direction) []*model.Rule {
	if dir == Egress {
		return p.EgressDeny
	}
	return p.IngressDeny
}

// decide applies docs/policy.md "How policies combine" to one subject, one
// direction and one flow.
func (e *Evaluator) decide(s subject, dir Direction, f Flow) Verdict {
	pols := e.selecting(s)
	base := Decider{Subject: s.String(), Direction: dir, Rule: -1}
	if !e.enforced(s, pols, dir) {
		base.Kind = KindOpen
		return Verdict{Allowed: true, Decider: base}
	}
	if !hostsPacket(s, dir, f) {
		return notHost(base)
	}
	peerAddr := f.Src
	if dir == Egress {
		peerAddr = f.Dst
	}
	pr := e.classify(peerAddr, s.node)

	// Deny beats allow. The deciding deny rule is the first matching one
	// of a policy without audit; only when every matching deny rule is in
	// an audit policy does the first of those decide (and the packet is
	// audited): an audit policy never hides another policy's deny.
	var deny, auditDeny *Decider
	for _, p := range pols {
		for i, r := range denyRules(p, dir) {
			if !e.ruleMatches(r, p, s, dir, pr, f) {
				continue
			}
			d := base
			d.Kind, d.Policy, d.Rule, d.Pos = KindDeny, p.ID(), i, r.Pos
			if p.Audit {
				if auditDeny == nil {
					auditDeny = &d
				}
			} else if deny == nil {
				deny = &d
			}
		}
	}
	switch {
	case deny != nil:
		return e.denied(*deny, false)
	case auditDeny != nil:
		return e.denied(*auditDeny, true)
	}
	for _, p := range pols {
		for i, r := range allowRules(p, dir) {
			if e.ruleMatches(r, p, s, dir, pr, f) {
				d := base
				d.Kind, d.Policy, d.Rule, d.Pos = KindAllow, p.ID(), i, r.Pos
				return Verdict{Allowed: true, Enforced: true, Decider: d}
			}
		}
	}
	// Default deny is audited when every selecting policy that enforces
	// the direction is an audit policy; when none does (enforcement
	// "always" alone), only settings.audit audits it.
	auditAll, enforcing := true, 0
	for _, p := range pols {
		if p.Enforces(dir == Egress) {
			enforcing++
			auditAll = auditAll && p.Audit
		}
	}
	base.Kind = KindDefaultDeny
	return e.denied(base, enforcing > 0 && auditAll)
}

// denied makes the verdict for a deny decided by d; audit says the deciding
// policy (or policies) ask for audit. settings.audit audits every deny.
func (e *Evaluator) denied(d Decider, audit bool) Verdict {
	audit = audit || e.cfg.Settings.Audit
	return Verdict{Allowed: audit, Audited: audit, Enforced: true, Decider: d}
}

// ruleMatches reports whether rule r of policy p matches flow f at subject
// s: one of its peers and one of its port or ICMP entries match. A rule with
// neither peers nor ports matches nothing.
func (e *Evaluator) ruleMatches(r *model.Rule, p *model.Policy, s subject, dir Direction, pr peer, f Flow) bool {
	hasPeers := r.HasPeers || len(r.Endpoints)+len(r.CIDRs)+len(r.Entities) > 0
	hasL4 := len(r.Ports)+len(r.ICMPs) > 0
	if !hasPeers && !hasL4 {
		return false
	}
	if hasPeers && !e.peerMatches(r, p, pr) {
		return false
	}
	if hasL4 && !e.l4Matches(r, s, dir, pr, f) {
		return false
	}
	return true
}

// peerMatches reports whether one of r's peers matches pr.
func (e *Evaluator) peerMatches(r *model.Rule, p *model.Policy, pr peer) bool {
	if pr.class == classEndpoint {
		scope := ""
		if !p.ClusterWide {
			scope = p.Namespace
		}
		for _, sel := range r.Endpoints {
			if e.selectorMatches(sel, pr.ep, scope) {
				return true
			}
		}
	}
	for _, c := range r.CIDRs {
		if cidrMatches(c, pr) {
			return true
		}
	}
	for _, ent := range r.Entities {
		if entityMatches(ent.Entity, pr.class) {
			return true
		}
	}
	return false
}

// cidrMatches: a world address inside the prefix and inside none of the
// exceptions.
func cidrMatches(c *model.CIDRPeer, pr peer) bool {
	if pr.class != classWorld {
		return false
	}
	if !normPrefix(c.CIDR).Contains(pr.addr) {
		return false
	}
	for _, x := range c.Except {
		if normPrefix(x).Contains(pr.addr) {
			return false
		}
	}
	return true
}

// normPrefix makes a prefix of IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d/96 and longer) the IPv4 prefix it stands for, as norm
// does for addresses: otherwise it could contain no normalised address.
func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

func entityMatches(ent model.Entity, c peerClass) bool {
	switch ent {
	case model.EntityAll:
		return true
	case model.EntityCluster:
		return c != classWorld
	case model.EntityWorld:
		return c == classWorld
	case model.EntityHost:
		return c == classHost
	case model.EntityRemoteNode:
		return c == classRemoteNode
	case model.EntityKubeAPIServer:
		return c == classKubeAPIServer
	}
	return false
}

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// hasPorts reports whether protocol proto has the ports policy matches on.
func hasPorts(proto uint8) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoSCTP
}

// l4Matches reports whether one of r's port or ICMP entries matches f.
func (e *Evaluator) l4Matches(r *model.Rule, s subject, dir Direction, pr peer, f Flow) bool {
	for _, pt := range r.Ports {
		if e.portMatches(pt, s, dir, pr, f) {
			return true
		}
	}
	for _, ic := range r.ICMPs {
		if icmpMatches(ic, f) {
			return true
		}
	}
	return false
}

func (e *Evaluator) portMatches(pt *model.PortRule, s subject, dir Direction, pr peer, f Flow) bool {
	if pt.Name != "" {
		// Resolved on the destination endpoint: the subject for ingress,
		// the peer for egress. A host has no named ports.
		dst := s.ep
		if dir == Egress {
			dst = pr.ep
		}
		if dst == nil {
			return false
		}
		for _, np := range dst.NamedPorts {
			if np.Name != pt.Name {
				continue
			}
			proto := np.Protocol
			if proto == "" {
				proto = model.ProtoTCP
			}
			if pt.Protocol != model.ProtoAny && pt.Protocol != proto {
				return false
			}
			return f.Protocol == proto.Number() && f.DstPort == np.Port
		}
		return false
	}
	if pt.Protocol == model.ProtoAny || pt.Protocol == "" {
		if pt.Port == 0 {
			return true // every protocol, ICMP included
		}
		if !hasPorts(f.Protocol) {
			return false
		}
	} else if f.Protocol != pt.Protocol.Number() {
		return false
	}
	switch {
	case pt.Port == 0:
		return true
	case pt.EndPort == 0:
		return f.DstPort == pt.Port
	}
	return f.DstPort >= pt.Port && f.DstPort <= pt.EndPort
}

func icmpMatches(ic *model.ICMPRule, f Flow) bool {
	want := uint8(protoICMP)
	if ic.Family == "IPv6" {
		want = protoICMPv6
	}
	if f.Protocol != want || f.ICMPType != ic.Type {
		return false
	}
	return ic.Code == nil || *ic.Code == f.ICMPCode
}
