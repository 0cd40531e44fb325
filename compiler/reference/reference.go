// Package reference is ebpfc's reference evaluator: a plain-Go statement of
// what docs/policy.md says a policy means, written from the model alone. It
// shares no code with the lowering, the IR or the bytecode, so that when the
// compiled datapath and this package disagree about a packet, one of them is
// wrong and a differential test says so.
//
// An Evaluator answers for one subject (an endpoint, or a node for the host
// firewall) and one direction at a time: Ingress, Egress, HostIngress and
// HostEgress take a Flow (addresses, protocol, ports, ICMP type and code);
// Connection judges a flow between two endpoints as egress at the source then
// ingress at the destination; Packet parses an Ethernet frame and applies the
// packet rules (options, extension headers, fragments, malformed headers,
// neighbour discovery) before judging the flow it carries.
//
// Every Verdict names what decided it: the allow or deny rule (policy, list,
// index and source position), the default deny, an open subject, or a header
// problem. The evaluator favours being obviously right over being fast: it
// walks every selecting policy and every rule for every question.
package reference

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// Direction is the side of the subject a packet crosses.
type Direction uint8

// The directions.
const (
	Ingress Direction = iota // packets sent to the subject; the peer is the source
	Egress                   // packets the subject sends; the peer is the destination
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Kind says what decided a verdict.
type Kind uint8

// The kinds of deciders.
const (
	// KindOpen: the subject is not enforced in the direction (no selecting
	// policy enforces it, or enforcement is "never"); the packet passes.
	KindOpen Kind = iota
	// KindAllow: an allow rule (ingress or egress list) matched.
	KindAllow
	// KindDeny: a deny rule (ingressDeny or egressDeny list) matched.
	KindDeny
	// KindDefaultDeny: the subject is enforced and no rule matched.
	KindDefaultDeny
	// KindMalformed: the frame's headers are truncated or inconsistent.
	KindMalformed
	// KindFragment: a later IPv4 or IPv6 fragment arrived without a
	// remembered first fragment, so its ports are unknown.
	KindFragment
	// KindExempt: the packet passes without a policy check: it is not IP,
	// or it is ICMPv6 neighbour discovery.
	KindExempt
	// KindNotHost: at a host, the packet is not the host's own — not
	// addressed to (ingress) or sent from (egress) one of the node's
	// addresses — so the host firewall lets it pass unjudged.
	KindNotHost
)

var kindNames = [...]string{
	KindOpen:        "open",
	KindAllow:       "allow",
	KindDeny:        "deny",
	KindDefaultDeny: "default-deny",
	KindMalformed:   "malformed",
	KindFragment:    "fragment",
	KindExempt:      "exempt",
	KindNotHost:     "not-host",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Decider says what decided a verdict.
type Decider struct {
	Kind Kind
	// Subject is the endpoint ("namespace/name") or the node ("node:NAME")
	// the verdict was decided for.
	Subject   string
	Direction Direction
	// Policy is the ID of the policy whose rule decided (KindAllow,
	// KindDeny); empty otherwise.
	Policy string
	// Rule is the index of the deciding rule in its list: Ingress or Egress
	// for KindAllow, IngressDeny or EgressDeny for KindDeny; -1 otherwise.
	Rule int
	// Pos is the deciding rule's position; zero when no rule decided.
	Pos model.Pos
}

func (d Decider) String() string {
	s := fmt.Sprintf("%s %s %s", d.Kind, d.Subject, d.Direction)
	if d.Rule >= 0 {
		s += fmt.Sprintf(" %s %s[%d]", d.Policy, d.list(), d.Rule)
	}
	return s
}

// list names the rule list the deciding rule is in.
func (d Decider) list() string {
	switch {
	case d.Kind == KindDeny && d.Direction == Egress:
		return "egressDeny"
	case d.Kind == KindDeny:
		return "ingressDeny"
	case d.Direction == Egress:
		return "egress"
	}
	return "ingress"
}

// Verdict is what happens to a flow or packet.
type Verdict struct {
	// Allowed: the packet passes (audited packets pass too).
	Allowed bool
	// Audited: the packet would have been denied but passes because of
	// audit mode (settings.audit or the policy's audit flag).
	Audited bool
	// Enforced: the subject is in default deny in this direction.
	Enforced bool
	Decider  Decider
}

func (v Verdict) String() string {
	s := "deny"
	switch {
	case v.Audited:
		s = "audit"
	case v.Allowed:
		s = "allow"
	}
	return s + " (" + v.Decider.String() + ")"
}

// Flow is what policy looks at in a packet. Ports are zero for protocols
// without ports; ICMPType and ICMPCode are read for ICMP (1) and ICMPv6 (58).
type Flow struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
	ICMPType         uint8
	ICMPCode         uint8
}

// Evaluator answers policy questions about one configuration. It is safe for
// concurrent use; its only mutable state is the fragment table that Packet
// keeps.
type Evaluator struct {
	cfg        *model.Config
	endpoints  map[netip.Addr]*model.Endpoint
	nodeOf     map[netip.Addr]*model.Node
	nodes      map[string]*model.Node
	nsLabels   map[string]map[string]string
	apiServer  map[netip.Addr]bool
	enforceAll bool // settings.enforcement "always"
	enforceOff bool // settings.enforcement "never"

	mu    sync.Mutex
	frags map[fragKey]fragInfo
}

// New returns an evaluator for cfg, which must have passed the front end's
// validation (addresses unique, references resolved). cfg must not change
// while the evaluator is in use.
func New(cfg *model.Config) *Evaluator {
	e := &Evaluator{
		cfg:        cfg,
		endpoints:  map[netip.Addr]*model.Endpoint{},
		nodeOf:     map[netip.Addr]*model.Node{},
		nodes:      map[string]*model.Node{},
		nsLabels:   map[string]map[string]string{},
		apiServer:  map[netip.Addr]bool{},
		enforceAll: cfg.Settings.Enforcement == model.EnforceAlways,
		enforceOff: cfg.Settings.Enforcement == model.EnforceNever,
		frags:      map[fragKey]fragInfo{},
	}
	for _, ep := range cfg.Endpoints {
		for _, a := range ep.Addresses {
			e.endpoints[norm(a)] = ep
		}
	}
	for _, n := range cfg.Nodes {
		e.nodes[n.Name] = n
		for _, a := range n.Addresses {
			e.nodeOf[norm(a)] = n
		}
	}
	for _, ns := range cfg.Namespaces {
		e.nsLabels[ns.Name] = ns.Labels
	}
	for _, a := range cfg.Cluster.APIServer {
		e.apiServer[norm(a)] = true
	}
	return e
}

// Config returns the configuration the evaluator answers for.
func (e *Evaluator) Config() *model.Config { return e.cfg }

// Endpoint returns the endpoint that has address a, or nil.
func (e *Evaluator) Endpoint(a netip.Addr) *model.Endpoint { return e.endpoints[norm(a)] }

// Node returns the node that has address a, or nil.
func (e *Evaluator) Node(a netip.Addr) *model.Node { return e.nodeOf[norm(a)] }

// norm makes addresses comparable: IPv4-mapped IPv6 addresses become IPv4
// and zones are dropped.
func norm(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// namespaceLabels returns the labels of namespace ns. Every namespace
// carries kubernetes.io/metadata.name, even one the configuration does not
// list.
func (e *Evaluator) namespaceLabels(ns string) map[string]string {
	const nameLabel = "kubernetes.io/metadata.name"
	l := e.nsLabels[ns]
	if l[nameLabel] == ns {
		return l
	}
	out := map[string]string{nameLabel: ns}
	for k, v := range l {
		if k != nameLabel {
			out[k] = v
		}
	}
	return out
}

// subject is who a verdict is decided for: an endpoint, or a node's host.
type subject struct {
	ep   *model.Endpoint // nil for a host subject
	node *model.Node     // the endpoint's node, or the host itself; nil if unknown
}

func (s subject) String() string {
	if s.ep != nil {
		return s.ep.ID()
	}
	if s.node != nil {
		return "node:" + s.node.Name
	}
	return "?"
}

func (e *Evaluator) endpointSubject(ep *model.Endpoint) subject {
	return subject{ep: ep, node: e.nodes[ep.Node]}
}

// Ingress judges f arriving at endpoint ep.
func (e *Evaluator) Ingress(ep *model.Endpoint, f Flow) Verdict {
	return e.decide(e.endpointSubject(ep), Ingress, f)
}

// Egress judges f sent by endpoint ep.
func (e *Evaluator) Egress(ep *model.Endpoint, f Flow) Verdict {
	return e.decide(e.endpointSubject(ep), Egress, f)
}

// HostIngress judges f arriving at node's host (the host firewall): the
// subject is the node, selected by policies with a nodeSelector. A node no
// such policy selects is open. Only packets addressed to one of the node's
// addresses are the host's; others pass (KindNotHost).
func (e *Evaluator) HostIngress(node *model.Node, f Flow) Verdict {
	return e.decide(subject{node: node}, Ingress, f)
}

// HostEgress judges f sent by node's host: packets sent from one of the
// node's addresses (others pass, KindNotHost).
func (e *Evaluator) HostEgress(node *model.Node, f Flow) Verdict {
	return e.decide(subject{node: node}, Egress, f)
}

// Judge judges f at endpoint ep in direction dir.
func (e *Evaluator) Judge(ep *model.Endpoint, dir Direction, f Flow) Verdict {
	return e.decide(e.endpointSubject(ep), dir, f)
}

// Connection judges the first packet of a connection: egress at the source
// endpoint (when f.Src is an endpoint's address), then ingress at the
// destination endpoint (when f.Dst is one). It is allowed when both allow.
// The decider is the side that denied; else the side that audited (egress
// first); else the ingress side, or the egress side when the destination is
// not an endpoint. Audited and Enforced hold when they hold on either side.
// With neither side an endpoint, nothing is enforced and the verdict is open
// with an empty subject.
func (e *Evaluator) Connection(f Flow) Verdict {
	var out *Verdict
	audited, enforced := false, false
	if src := e.Endpoint(f.Src); src != nil {
		v := e.Egress(src, f)
		if !v.Allowed {
			return v
		}
		out, audited, enforced = &v, v.Audited, v.Enforced
	}
	if dst := e.Endpoint(f.Dst); dst != nil {
		v := e.Ingress(dst, f)
		if !v.Allowed {
			return v
		}
		if out == nil || !out.Audited {
			out = &v
		}
		audited = audited || v.Audited
		enforced = enforced || v.Enforced
	}
	if out == nil {
		return Verdict{Allowed: true, Decider: Decider{Kind: KindOpen, Rule: -1}}
	}
	v := *out
	v.Audited, v.Enforced = audited, enforced
	return v
}
