package lint

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// ruleRef is one rule of one policy, with where it is written.
type ruleRef struct {
	policy *model.Policy
	list   string // ingress, egress, ingressDeny or egressDeny
	index  int
	rule   *model.Rule
	order  int // rank in policy order, then list, then index
	peers  []peer
	ports  portSet
}

func (r ruleRef) egress() bool { return r.list == "egress" || r.list == "egressDeny" }
func (r ruleRef) deny() bool   { return r.list == "ingressDeny" || r.list == "egressDeny" }

// String names the rule as a person finds it: "ingress[0] of policy web/p".
func (r ruleRef) String() string {
	return fmt.Sprintf("%s[%d] of policy %s", r.list, r.index, r.policy.ID())
}

// rules lists every rule of the configuration in policy order.
func (l *linter) rules() []ruleRef {
	var out []ruleRef
	for _, p := range l.cfg.Policies {
		for _, list := range []struct {
			name  string
			rules []*model.Rule
		}{{"ingress", p.Ingress}, {"egress", p.Egress}, {"ingressDeny", p.IngressDeny}, {"egressDeny", p.EgressDeny}} {
			for i, r := range list.rules {
				out = append(out, ruleRef{
					policy: p, list: list.name, index: i, rule: r, order: len(out),
					peers: rulePeers(p, r), ports: rulePorts(r),
				})
			}
		}
	}
	return out
}

// matchesNothing reports whether r matches no packet: a rule with neither
// peers nor ports (it only turns enforcement on), or one whose peer fields
// are all empty lists.
func matchesNothing(r *model.Rule) bool {
	if !r.HasPeers {
		return len(r.Ports) == 0 && len(r.ICMPs) == 0
	}
	return len(r.Endpoints)+len(r.CIDRs)+len(r.Entities) == 0
}

type peerKind int

const (
	peerEvery    peerKind = iota // a rule without peer fields: every peer
	peerEntity                   // fromEntities/toEntities
	peerCIDR                     // fromCIDR/fromCIDRSet
	peerSelector                 // fromEndpoints/toEndpoints
)

// peer is one alternative of a rule's peers.
type peer struct {
	kind   peerKind
	entity model.Entity
	cidr   *model.CIDRPeer
	scope  scope
}

func rulePeers(p *model.Policy, r *model.Rule) []peer {
	if !r.HasPeers {
		return []peer{{kind: peerEvery}}
	}
	var out []peer
	for _, e := range r.Entities {
		out = append(out, peer{kind: peerEntity, entity: e.Entity})
	}
	for _, c := range r.CIDRs {
		out = append(out, peer{kind: peerCIDR, cidr: c})
	}
	for _, s := range r.Endpoints {
		out = append(out, peer{kind: peerSelector, scope: peerScope(p, s)})
	}
	return out
}

// ruleWithin reports whether every packet rule a matches, rule b matches
// too, for any endpoint inventory. Both rules must be of policies that
// apply to the same subject and direction; the caller checks that. Rules
// that match nothing are never within another: they exist to turn
// enforcement on.
func (l *linter) ruleWithin(a, b ruleRef) bool {
	if matchesNothing(a.rule) || matchesNothing(b.rule) {
		return false
	}
	for _, x := range a.peers {
		if !slices.ContainsFunc(b.peers, func(y peer) bool { return l.peerWithin(x, y) }) {
			return false
		}
	}
	return a.ports.within(b.ports)
}

// peerWithin reports whether every peer address a matches, b matches.
// The classes are those of docs/policy.md: endpoint, host, remote-node,
// kube-apiserver, unmanaged and world; CIDR peers match world,
// kube-apiserver and unmanaged addresses only.
func (l *linter) peerWithin(a, b peer) bool {
	switch b.kind {
	case peerEvery:
		return true
	case peerEntity:
		switch b.entity {
		case model.EntityAll:
			return true
		case model.EntityCluster:
			switch a.kind {
			case peerEntity:
				return a.entity != model.EntityWorld && a.entity != model.EntityAll
			case peerSelector:
				return true
			case peerCIDR:
				// Inside a pod CIDR, an address is an endpoint's (which a
				// CIDR peer does not match) or unmanaged: never world.
				return slices.ContainsFunc(l.cfg.Cluster.PodCIDRs, func(pc netip.Prefix) bool { return prefixWithin(a.cidr.CIDR, pc) })
			}
			return false
		case model.EntityWorld:
			switch a.kind {
			case peerEntity:
				return a.entity == model.EntityWorld
			case peerCIDR:
				// Outside the pod CIDRs and the API server, every address
				// a CIDR peer matches is world.
				c := a.cidr.CIDR
				return !slices.ContainsFunc(l.cfg.Cluster.PodCIDRs, c.Overlaps) &&
					!slices.ContainsFunc(l.cfg.Cluster.APIServer, c.Contains)
			}
			return false
		default:
			return a.kind == peerEntity && a.entity == b.entity
		}
	case peerCIDR:
		return a.kind == peerCIDR && cidrWithin(a.cidr, b.cidr)
	case peerSelector:
		return a.kind == peerSelector && a.scope.within(b.scope)
	}
	return false
}

// cidrWithin reports whether every address CIDR peer a matches, b matches:
// a's prefix lies inside b's, and each of b's excepts either misses a's
// prefix or lies inside one of a's excepts.
func cidrWithin(a, b *model.CIDRPeer) bool {
	if !prefixWithin(a.CIDR, b.CIDR) {
		return false
	}
	for _, ex := range b.Except {
		if !ex.Overlaps(a.CIDR) {
			continue
		}
		if !slices.ContainsFunc(a.Except, func(aex netip.Prefix) bool { return prefixWithin(ex, aex) }) {
			return false
		}
	}
	return true
}

// prefixWithin reports whether inner lies inside outer (same family).
func prefixWithin(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// l4Protocols are the protocols with ports, which ANY stands for.
var l4Protocols = []model.Protocol{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP}

type span struct{ lo, hi int }

// portSet is what a rule's toPorts and icmps match.
type portSet struct {
	every  bool // every protocol and port, ICMP included
	ranges map[model.Protocol][]span
	named  []*model.PortRule
	icmps  []*model.ICMPRule
}

func protocolOf(pr *model.PortRule) model.Protocol {
	if pr.Protocol == "" {
		return model.ProtoAny
	}
	return pr.Protocol
}

// protocols returns the protocols a port entry of protocol p matches.
func protocols(p model.Protocol) []model.Protocol {
	if p == model.ProtoAny {
		return l4Protocols
	}
	return []model.Protocol{p}
}

// portSpan is the ports a numeric port entry matches: port 0 is every
// port of the protocol.
func portSpan(pr *model.PortRule) span {
	switch {
	case pr.Port == 0:
		return span{0, 65535}
	case pr.EndPort != 0:
		return span{int(pr.Port), int(pr.EndPort)}
	}
	return span{int(pr.Port), int(pr.Port)}
}

func rulePorts(r *model.Rule) portSet {
	s := portSet{ranges: map[model.Protocol][]span{}, icmps: r.ICMPs}
	if len(r.Ports) == 0 && len(r.ICMPs) == 0 {
		s.every = true
		return s
	}
	for _, pr := range r.Ports {
		proto := protocolOf(pr)
		switch {
		case pr.Name != "":
			s.named = append(s.named, pr)
		case proto == model.ProtoAny && pr.Port == 0:
			s.every = true
		default:
			for _, p := range protocols(proto) {
				s.ranges[p] = append(s.ranges[p], portSpan(pr))
			}
		}
	}
	for p, spans := range s.ranges {
		s.ranges[p] = mergeSpans(spans)
	}
	return s
}

// mergeSpans sorts spans and joins those that overlap or touch.
func mergeSpans(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int { return a.lo - b.lo })
	var out []span
	for _, s := range spans {
		if n := len(out); n > 0 && s.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, s.hi)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (s portSet) covers(p model.Protocol, x span) bool {
	return slices.ContainsFunc(s.ranges[p], func(y span) bool { return y.lo <= x.lo && x.hi <= y.hi })
}

// within reports whether every packet a matches, b matches. A named port
// is within b when b names the same port with the same protocol (or ANY),
// or covers every port of its protocols: its number depends on the
// destination endpoint.
func (a portSet) within(b portSet) bool {
	if b.every {
		return true
	}
	if a.every {
		return false
	}
	for p, spans := range a.ranges {
		for _, x := range spans {
			if !b.covers(p, x) {
				return false
			}
		}
	}
	for _, n := range a.named {
		sameName := slices.ContainsFunc(b.named, func(m *model.PortRule) bool {
			return m.Name == n.Name && (protocolOf(m) == model.ProtoAny || protocolOf(m) == protocolOf(n))
		})
		allPorts := !slices.ContainsFunc(protocols(protocolOf(n)), func(p model.Protocol) bool { return !b.covers(p, span{0, 65535}) })
		if !sameName && !allPorts {
			return false
		}
	}
	for _, ic := range a.icmps {
		if !slices.ContainsFunc(b.icmps, func(jc *model.ICMPRule) bool {
			return jc.Family == ic.Family && jc.Type == ic.Type && (jc.Code == nil || ic.Code != nil && *ic.Code == *jc.Code)
		}) {
			return false
		}
	}
	return true
}
