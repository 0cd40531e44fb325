package randpolicy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/compiler/reference"
)

// Outcome is what one side of a probe (one endpoint, one direction) did
// with one packet, in terms both the reference evaluator and the compiled
// programs can state.
type Outcome struct {
	Pass bool
	// Decider is what decided: "allow POLICY LIST[i]", "deny POLICY
	// LIST[i]", "default-deny", "open" (nothing was enforced, or the
	// packet is exempt, as ARP is) or "header" (a header problem dropped
	// it). A pass decided by a deny or a default deny is an audit.
	Decider string
	// Detail says more about a header drop (which problem, which drop
	// reason). The reference and the kernel name these differently, so it
	// is shown but not compared.
	Detail string
}

// Deciders that name no rule.
const (
	DecidedOpen        = "open"
	DecidedHeader      = "header"
	DecidedDefaultDeny = "default-deny"
)

// Agrees reports whether two outcomes say the same: the same verdict,
// decided by the same rule (or default, or header check). A drop for a
// header problem and a drop by policy agree: the packet is dropped either
// way, and header problems that policy cannot judge are counted
// differently by the two (the reference names the problem, the datapath
// may count the packet against the rule its lookup found).
func (o Outcome) Agrees(k Outcome) bool {
	if o.Pass != k.Pass {
		return false
	}
	if !o.Pass && (o.Decider == DecidedHeader || k.Decider == DecidedHeader) {
		return true
	}
	return o.Decider == k.Decider
}

func (o Outcome) String() string {
	v := "drop"
	if o.Pass {
		v = "pass"
		if o.Decider != DecidedOpen && !strings.HasPrefix(o.Decider, "allow ") {
			v = "audit"
		}
	}
	s := v + " " + o.Decider
	if o.Detail != "" {
		s += " (" + o.Detail + ")"
	}
	return s
}

// Kind is the first word of the decider (allow, deny, default-deny, open,
// header): what a minimiser keeps while it shrinks a disagreement, since
// policy names and rule indexes change as rules go.
func (o Outcome) Kind() string {
	k, _, _ := strings.Cut(o.Decider, " ")
	return k
}

// RuleDecider is the decider string of a rule: kind "allow" or "deny",
// the policy's ID, the direction ("ingress", "egress") and the rule's index
// in its list.
func RuleDecider(kind, policy, direction string, rule int) string {
	list := direction
	if kind == "deny" {
		list += "Deny"
	}
	return fmt.Sprintf("%s %s %s[%d]", kind, policy, list, rule)
}

// ReferenceOutcome states a reference verdict as an Outcome.
func ReferenceOutcome(v reference.Verdict) Outcome {
	o := Outcome{Pass: v.Allowed}
	d := v.Decider
	switch d.Kind {
	case reference.KindAllow, reference.KindDeny:
		o.Decider = RuleDecider(d.Kind.String(), d.Policy, d.Direction.String(), d.Rule)
	case reference.KindDefaultDeny:
		o.Decider = DecidedDefaultDeny
	case reference.KindOpen, reference.KindExempt, reference.KindNotHost:
		// A packet that is not the host's passes the host firewall
		// uncounted, as an open subject's does.
		o.Decider = DecidedOpen
		if d.Kind != reference.KindOpen {
			o.Detail = d.Kind.String()
		}
	default:
		o.Decider, o.Detail = DecidedHeader, d.Kind.String()
	}
	return o
}

// Side is one program a probe's packets cross: the egress program of the
// source endpoint, the ingress program of the destination endpoint, or the
// host firewall of a node the packet leaves or arrives at by its devices.
type Side struct {
	Endpoint *model.Endpoint // nil for the host firewall
	Node     *model.Node     // the host, for the host firewall
	Dir      reference.Direction
}

// Host reports whether the side is a node's host firewall.
func (s Side) Host() bool { return s.Endpoint == nil }

// NodeName is the node whose datapath runs the side's program.
func (s Side) NodeName() string {
	if s.Host() {
		return s.Node.Name
	}
	return s.Endpoint.Node
}

// Subject names who the side decides for: "namespace/name" or "node:NAME".
func (s Side) Subject() string {
	if s.Host() {
		return "node:" + s.Node.Name
	}
	return s.Endpoint.ID()
}

// Program returns the name of the side's program: from_NS_NAME for egress,
// to_NS_NAME for ingress (names of generated configs need no escaping),
// host_egress and host_ingress for the host firewall.
func (s Side) Program() string {
	if s.Host() {
		if s.Dir == reference.Egress {
			return "host_egress"
		}
		return "host_ingress"
	}
	prefix := "to_"
	if s.Dir == reference.Egress {
		prefix = "from_"
	}
	return prefix + s.Endpoint.Namespace + "_" + s.Endpoint.Name
}

// Judge asks the reference evaluator about frame at the side.
func (s Side) Judge(e *reference.Evaluator, frame []byte) reference.Verdict {
	if s.Host() {
		return e.HostPacket(s.Node, s.Dir, frame)
	}
	return e.Packet(s.Endpoint, s.Dir, frame)
}

// tracks reports whether the side's subject has programs that track
// connections: it is enforced in one direction at least (an open
// direction of such a subject tracks the connections it lets out, so that
// the enforced one lets their replies in). A subject open both ways has no
// programs, and no replies to let in.
func (s Side) tracks(e *reference.Evaluator) bool {
	for _, dir := range []reference.Direction{reference.Ingress, reference.Egress} {
		var v reference.Verdict
		if s.Host() {
			if dir == reference.Ingress {
				v = e.HostIngress(s.Node, reference.Flow{})
			} else {
				v = e.HostEgress(s.Node, reference.Flow{})
			}
		} else {
			v = e.Judge(s.Endpoint, dir, reference.Flow{})
		}
		if v.Enforced {
			return true
		}
	}
	return false
}

// Sides returns the sides of probe p's first packet.
func Sides(e *reference.Evaluator, p Probe) []Side {
	return sidesOf(e, p.Src(), p.Dst())
}

// sidesOf returns the sides a packet from src to dst crosses, in order:
// egress at the source when it is an endpoint; the host firewall's egress
// on the node the packet leaves (the source endpoint's node, or the node
// whose address the source is), and its ingress on the node it arrives at
// (likewise for the destination), unless both are one node, where the
// packet does not cross the node's devices; ingress at the destination
// when it is an endpoint. A packet of a world address enters no node by
// its devices here but the destination's, and leaves none but the
// source's.
func sidesOf(e *reference.Evaluator, src, dst netip.Addr) []Side {
	nodes := map[string]*model.Node{}
	for _, n := range e.Config().Nodes {
		nodes[n.Name] = n
	}
	srcEP, dstEP := e.Endpoint(src), e.Endpoint(dst)
	from, to := e.Node(src), e.Node(dst)
	if srcEP != nil {
		from = nodes[srcEP.Node]
	}
	if dstEP != nil {
		to = nodes[dstEP.Node]
	}
	var out []Side
	if srcEP != nil {
		out = append(out, Side{Endpoint: srcEP, Dir: reference.Egress})
	}
	if from != nil && from != to {
		out = append(out, Side{Node: from, Dir: reference.Egress})
	}
	if to != nil && to != from {
		out = append(out, Side{Node: to, Dir: reference.Ingress})
	}
	if dstEP != nil {
		out = append(out, Side{Endpoint: dstEP, Dir: reference.Ingress})
	}
	return out
}

// Step is one packet of a probe at one side, as both judged it.
type Step struct {
	Packet    int // index in the probe
	Side      Side
	Reference Outcome
	Kernel    Outcome
}

// Agrees reports whether the step's outcomes agree.
func (s Step) Agrees() bool { return s.Reference.Agrees(s.Kernel) }

func (s Step) String() string {
	mark := "  "
	if !s.Agrees() {
		mark = "≠ "
	}
	return fmt.Sprintf("%spacket %d %s%s: reference %s, kernel %s", mark, s.Packet+1, s.Side.Program(), s.where(), s.Reference, s.Kernel)
}

// where names the node of a host side, whose program names are the same on
// every node.
func (s Step) where() string {
	if s.Side.Host() {
		return "@" + s.Side.Node.Name
	}
	return ""
}

// Runner runs one frame through one side's compiled program.
type Runner func(s Side, frame []byte) (Outcome, error)

// Compare sends the probe's packets, in order, through the reference
// evaluator and through run, side by side. A packet stops at the first side
// that drops it in either. The evaluator's fragment table is emptied first,
// as the caller must empty the datapath's state.
//
// The reference evaluator judges packets one by one; connections are
// modelled here, from docs/policy.md "Connections": the first packet of a
// connection that passes a side whose subject tracks connections (see
// Side.tracks) is remembered for that subject and direction, and at a side
// where policy would decide, a packet of the reversed connection (a reply)
// or an ICMP error quoting the connection's packet passes unjudged and
// uncounted, as an open side's packet does. Only packets whose headers are
// sound and that are not fragments start a connection; the quoted packet's
// connection is known from its ports, or an echo's identifier (0 here).
func Compare(e *reference.Evaluator, p Probe, run Runner) ([]Step, error) {
	e.ForgetFragments()
	var steps []Step
	ct := tracker{}
	for i, pk := range p.Packets {
		frame, err := p.Frame(i)
		if err != nil {
			return nil, err
		}
		sides := sidesOf(e, pk.Src, pk.Dst)
		for _, s := range sides {
			v := s.Judge(e, frame)
			ref := ReferenceOutcome(v)
			conn, connOK := connectionOf(pk, frame)
			policy := v.Decider.Kind == reference.KindAllow || v.Decider.Kind == reference.KindDeny || v.Decider.Kind == reference.KindDefaultDeny
			related := false
			if policy && connOK {
				switch {
				case ct[ctEntry{s.Subject(), other(s.Dir), conn.reversed()}]:
					ref, related = Outcome{Pass: true, Decider: DecidedOpen, Detail: "reply"}, true
				case pk.Quote != 0 && ct.relates(p.Packets[pk.Quote-1], s):
					ref, related = Outcome{Pass: true, Decider: DecidedOpen, Detail: "related"}, true
				}
			}
			k, err := run(s, frame)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", pk, s.Program(), err)
			}
			steps = append(steps, Step{Packet: i, Side: s, Reference: ref, Kernel: k})
			if !ref.Pass || !k.Pass {
				break
			}
			if connOK && !related && (policy || v.Decider.Kind == reference.KindOpen) && s.tracks(e) {
				ct[ctEntry{s.Subject(), s.Dir, conn}] = true
			}
		}
	}
	return steps, nil
}

// connTuple is a connection as its first packet carried it.
type connTuple struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

func (c connTuple) reversed() connTuple {
	return connTuple{c.dst, c.src, c.dport, c.sport, c.proto}
}

// ctEntry is a connection seen by a subject in a direction.
type ctEntry struct {
	subject string
	dir     reference.Direction
	conn    connTuple
}

type tracker map[ctEntry]bool

func other(d reference.Direction) reference.Direction {
	if d == reference.Egress {
		return reference.Ingress
	}
	return reference.Egress
}

// connectionOf returns the connection of packet pk (frame): its addresses,
// ports (none for ICMP, whose echo identifier is 0 here, and for other
// protocols) and protocol. ok is false for a packet that starts no
// connection: malformed, a fragment, not IP, or neighbour discovery.
func connectionOf(pk Packet, frame []byte) (connTuple, bool) {
	f, isIP, err := reference.ParseFrame(frame)
	if !isIP || err != nil || pk.MF || pk.Frag != 0 || slices.Contains(pk.Ext, "frag") {
		return connTuple{}, false
	}
	if pk.IPv6() && pk.Kind == "icmp" && pk.Type >= 133 && pk.Type <= 137 {
		return connTuple{}, false
	}
	return connTuple{f.Src, f.Dst, f.SrcPort, f.DstPort, f.Protocol}, true
}

// relates reports whether an ICMP error quoting packet q, at side s, is
// about a connection s's subject tracks: q's connection seen the other
// way, or q's reversed this way. Only a quoted transport header with
// ports, or an echo, names a connection.
func (ct tracker) relates(q Packet, s Side) bool {
	frame, err := q.Frame()
	if err != nil {
		return false
	}
	conn, ok := connectionOf(q, frame)
	echo := q.Kind == "icmp" && (q.Type == 8 || q.Type == 0 || q.Type == 128 || q.Type == 129)
	if !ok || !(q.hasPorts() || echo) {
		return false
	}
	return ct[ctEntry{s.Subject(), other(s.Dir), conn}] || ct[ctEntry{s.Subject(), s.Dir, conn.reversed()}]
}

// FirstDisagreement returns the index of the first step whose outcomes
// disagree, or -1.
func FirstDisagreement(steps []Step) int {
	for i, s := range steps {
		if !s.Agrees() {
			return i
		}
	}
	return -1
}

// Signature names the kind of a disagreement: the packet's shape and what
// each side decided, without names that change while a case is minimised.
// Disagreements with the same signature are most likely the same bug.
//
// The shape is "later-fragment", or, for a frame the reference finds
// malformed, the header fields the probe changed ("trunc", "totlen", "ext",
// …), or else "packet"; in front of it come "host" for the host firewall,
// "ipv6" for an IPv6 packet, and "reply" or "related" for a packet that
// goes the other way (an ICMP error quoting an earlier one is related).
// For shapes other than "packet", when the verdicts differ, only the
// verdicts are named (which rule let the packet through is beside the
// point of a header problem).
func Signature(p Probe, s Step) string {
	pk := p.Packets[s.Packet]
	var prefix []string
	if s.Side.Host() {
		prefix = append(prefix, "host")
	}
	if pk.IPv6() {
		prefix = append(prefix, "ipv6")
	}
	switch {
	case pk.Quote != 0:
		prefix = append(prefix, "related")
	case pk.Src != p.Src():
		prefix = append(prefix, "reply")
	}
	var shape []string
	switch {
	case pk.Frag != 0:
		shape = append(shape, "later-fragment")
	case pk.Malformed() && referenceMalformed(pk):
		for _, m := range []struct {
			on   bool
			name string
		}{
			{pk.Trunc > 0, "trunc"}, {pk.IHL >= 0, "ihl"}, {pk.Ver >= 0, "ver"},
			{pk.TotLen >= 0, "totlen"}, {pk.PLen >= 0, "plen"}, {pk.TCPOff >= 0, "tcpoff"},
			{len(pk.Ext) > 0, "ext"},
		} {
			if m.on {
				shape = append(shape, m.name)
			}
		}
	default:
		shape = append(shape, "packet")
	}
	brief := shape[0] != "packet" && s.Reference.Pass != s.Kernel.Pass
	verdict := func(o Outcome) string {
		v := "drop"
		if o.Pass {
			v = "pass"
		}
		if brief {
			return v
		}
		return v + "-" + o.Kind()
	}
	return fmt.Sprintf("%s_ref-%s_kernel-%s", strings.Join(append(prefix, shape...), "-"), verdict(s.Reference), verdict(s.Kernel))
}

// referenceMalformed reports whether the reference finds pk's frame
// malformed: a changed header field need not make it so (a total length
// shorter than the frame leaves padding, a short header length points at
// the options).
func referenceMalformed(pk Packet) bool {
	frame, err := pk.Frame()
	if err != nil {
		return false
	}
	_, _, err = reference.ParseFrame(frame)
	return err != nil
}
