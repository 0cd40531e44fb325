package randpolicy

import (
	"fmt"
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
	case reference.KindOpen, reference.KindExempt:
		o.Decider = DecidedOpen
	default:
		o.Decider, o.Detail = DecidedHeader, d.Kind.String()
	}
	return o
}

// Side is one program a probe's packets cross: the egress program of the
// source endpoint or the ingress program of the destination endpoint.
type Side struct {
	Endpoint *model.Endpoint
	Dir      reference.Direction
}

// Program returns the name of the side's program: from_NS_NAME for egress,
// to_NS_NAME for ingress (names of generated configs need no escaping).
func (s Side) Program() string {
	prefix := "to_"
	if s.Dir == reference.Egress {
		prefix = "from_"
	}
	return prefix + s.Endpoint.Namespace + "_" + s.Endpoint.Name
}

// Sides returns the sides of probe p in cfg, in the order a packet
// crosses them: egress at the source when it is an endpoint, then ingress
// at the destination when it is one.
func Sides(e *reference.Evaluator, p Probe) []Side {
	var out []Side
	if ep := e.Endpoint(p.Src()); ep != nil {
		out = append(out, Side{ep, reference.Egress})
	}
	if ep := e.Endpoint(p.Dst()); ep != nil {
		out = append(out, Side{ep, reference.Ingress})
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
	return fmt.Sprintf("%spacket %d %s: reference %s, kernel %s", mark, s.Packet+1, s.Side.Program(), s.Reference, s.Kernel)
}

// Runner runs one frame through one side's compiled program.
type Runner func(s Side, frame []byte) (Outcome, error)

// Compare sends the probe's packets, in order, through the reference
// evaluator and through run, side by side. A packet stops at the first side
// that drops it in either. The evaluator's fragment table is emptied first,
// as the caller must empty the datapath's state.
func Compare(e *reference.Evaluator, p Probe, run Runner) ([]Step, error) {
	e.ForgetFragments()
	sides := Sides(e, p)
	var steps []Step
	for i, pk := range p.Packets {
		frame, err := pk.Frame()
		if err != nil {
			return nil, err
		}
		for _, s := range sides {
			ref := ReferenceOutcome(e.Packet(s.Endpoint, s.Dir, frame))
			k, err := run(s, frame)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", pk, s.Program(), err)
			}
			steps = append(steps, Step{Packet: i, Side: s, Reference: ref, Kernel: k})
			if !ref.Pass || !k.Pass {
				break
			}
		}
	}
	return steps, nil
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
// malformed, the header fields the probe changed ("trunc", "totlen", …), or
// else "packet". For the first two,
// when the verdicts differ, only the verdicts are named (which rule let the
// packet through is beside the point of a header problem).
func Signature(p Probe, s Step) string {
	pk := p.Packets[s.Packet]
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
			{pk.TotLen >= 0, "totlen"}, {pk.TCPOff >= 0, "tcpoff"},
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
	return fmt.Sprintf("%s_ref-%s_kernel-%s", strings.Join(shape, "-"), verdict(s.Reference), verdict(s.Kernel))
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
