// Package policytest runs a configuration's tests section against the
// compiled programs: each test is a connection attempt carried, packet by
// packet, through the policy programs of the endpoints it involves, in the
// kernel (BPF_PROG_TEST_RUN) or in ebpfc's interpreter (package vm).
//
// A test's forward packet (TCP SYN, UDP datagram, SCTP INIT or ICMP echo
// request; IPv4 or IPv6 as model.Test.PickFamily says, with an ICMPv6
// echo request over IPv6) runs through the source endpoint's egress-policy
// program on the source's node, then the destination endpoint's
// ingress-policy program on the destination's node. When it passes everywhere the reply (SYN-ACK,
// reverse datagram, INIT-ACK, echo reply) runs back through the destination's
// egress-policy program and the source's ingress-policy program. Each node's
// programs and maps are loaded once for the whole run, so whatever state a
// packet leaves behind (connection tracking) is there for the next, as on a
// node; each test uses its own source port so that no test answers another.
//
// Which rule decided each step is read from the datapath's counters: every
// verdict adds to rule_stats[cookie] and every drop to drop_stats[reason]
// (see docs/datapath.md), and the manifest maps a cookie back to its policy,
// rule and CUE position.
package policytest

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// Engine says where the programs run.
type Engine string

// The engines. EngineAuto is the kernel when it can load and run programs
// here, the interpreter otherwise.
const (
	EngineAuto   Engine = "auto"
	EngineKernel Engine = "kernel"
	EngineVM     Engine = "vm"
)

// ParseEngine reads an engine name: auto, kernel or vm.
func ParseEngine(s string) (Engine, error) {
	switch e := Engine(s); e {
	case EngineAuto, EngineKernel, EngineVM:
		return e, nil
	}
	return "", fmt.Errorf("unknown engine %q: want kernel, vm or auto", s)
}

// ErrKernelUnavailable is returned (wrapped, with the reason) when the
// kernel engine is asked for and the kernel cannot load or run programs
// here.
var ErrKernelUnavailable = errors.New("the kernel cannot load and run BPF programs here")

// Options control a run.
type Options struct {
	// Engine is where programs run; "" means EngineAuto.
	Engine Engine
	// Run, when set, selects the tests whose name it matches.
	Run *regexp.Regexp
}

// Status is the outcome of one test.
type Status string

// The outcomes. A test is not run when it needs something the compiler
// does not handle yet (services); it is reported, never passed.
const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	NotRun Status = "not run"
)

// Report is the outcome of a run.
type Report struct {
	// Engine is the engine that ran the programs (never auto).
	Engine Engine `json:"engine"`
	// EngineNote says why auto chose the interpreter: what kept the
	// kernel from loading or running a program.
	EngineNote string   `json:"engineNote,omitempty"`
	Tests      []Result `json:"tests"`
	Passed     int      `json:"passed"`
	Failed     int      `json:"failed"`
	NotRun     int      `json:"notRun"`
}

// Result is one test's outcome.
type Result struct {
	Name     string `json:"name"`
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port,omitempty"`
	// Family is the address family of the packets, "IPv4" or "IPv6"
	// (model.Test.PickFamily); "" for a test that did not get so far.
	Family   string   `json:"family,omitempty"`
	Expect   string   `json:"expect"`
	Backends []string `json:"backends,omitempty"`
	Position string   `json:"position"`
	Status   Status   `json:"status"`
	// Message says why the test failed or was not run.
	Message string   `json:"message,omitempty"`
	Packets []Packet `json:"packets,omitempty"`
}

// Packet is one packet of a test's connection and the programs it went
// through, in order, up to the first that dropped it.
type Packet struct {
	Kind    string `json:"kind"` // "forward" or "reply"
	Summary string `json:"summary"`
	Steps   []Step `json:"steps"`
}

// Step is one program run on a packet.
type Step struct {
	Node     string `json:"node"`
	Program  string `json:"program"`
	Endpoint string `json:"endpoint"`
	// Direction is the policy direction the program enforces for
	// Endpoint: egress for packets it sends, ingress for packets it
	// receives.
	Direction string   `json:"direction"`
	Verdict   string   `json:"verdict"` // "pass" or "drop"
	Return    int32    `json:"return"`  // the tc action the program returned
	Decision  Decision `json:"decision"`
}

// Decision says what decided a step's verdict.
type Decision struct {
	// Kind is a cookie's kind ("allow", "deny", "default-deny"), "open"
	// when no policy enforces the direction, "drop" for a drop counted
	// with a reason and no rule, or "uncounted" when no counter moved: a
	// reply or related packet that conntrack let through.
	Kind   string `json:"kind"`
	Cookie uint32 `json:"cookie,omitempty"`
	Policy string `json:"policy,omitempty"`
	// Rule is the rule list and index, as "ingress[rule 0]" or
	// "egressDeny[rule 2]".
	Rule string `json:"rule,omitempty"`
	// Endpoint and Direction are the endpoint and direction of a default
	// deny or of an open direction.
	Endpoint  string `json:"endpoint,omitempty"`
	Direction string `json:"direction,omitempty"`
	Audit     bool   `json:"audit,omitempty"`
	// Reason is the drop reason counted, if any.
	Reason string `json:"reason,omitempty"`
	// Position is the CUE position of the rule, of the default deny's
	// policy, or of the endpoint for an open direction.
	Position string `json:"position,omitempty"`
}

// String describes d in a few words, without its position.
func (d Decision) String() string {
	var s string
	switch d.Kind {
	case "allow", "deny":
		s = fmt.Sprintf("policy %s %s", d.Policy, d.Rule)
	case "default-deny":
		s = "default deny of " + d.Endpoint
	case "open":
		s = fmt.Sprintf("open: %s of %s is not enforced", d.Direction, d.Endpoint)
	case "drop":
		s = "dropped: " + d.Reason
	default:
		// In an enforced direction every verdict but a conntrack one
		// counts a rule or a drop reason.
		s = "conntrack: a reply to (or ICMP error about) a tracked connection"
	}
	if d.Audit {
		s += " (audit)"
	}
	return s
}

// Run runs cfg's tests (sorted by name; those opts.Run selects) against
// arts, the artifacts compiler.Compile made of cfg for every node. An
// error means the run itself failed (a program the kernel refuses, a
// fault in the interpreter, ErrKernelUnavailable); failed tests are in the
// report.
func Run(cfg *model.Config, arts []*compiler.Artifacts, opts Options) (*Report, error) {
	eng, note, err := chooseEngine(opts.Engine)
	if err != nil {
		return nil, err
	}
	r := newRunner(cfg, arts, eng)
	defer r.close()
	return r.run(opts.Run, note)
}

// run runs the configuration's tests that sel selects (all when nil), in
// name order; note is the report's EngineNote.
func (r *runner) run(sel *regexp.Regexp, note string) (*Report, error) {
	rep := &Report{Engine: r.engine, EngineNote: note, Tests: []Result{}}
	tests := slices.Clone(r.cfg.Tests)
	slices.SortStableFunc(tests, func(a, b *model.Test) int { return strings.Compare(a.Name, b.Name) })
	for i, t := range tests {
		if sel != nil && !sel.MatchString(t.Name) {
			continue
		}
		res, err := r.test(t, sourcePort(i))
		if err != nil {
			return nil, fmt.Errorf("test %s (%s): %w", t.Name, t.Pos, err)
		}
		switch res.Status {
		case Pass:
			rep.Passed++
		case Fail:
			rep.Failed++
		default:
			rep.NotRun++
		}
		rep.Tests = append(rep.Tests, res)
	}
	return rep, nil
}

// sourcePort gives the i-th test (in name order, whatever --run selects)
// its own source port in Linux's default ephemeral range, so that state a
// test leaves in a node (a conntrack entry) never answers another test.
func sourcePort(i int) uint16 { return uint16(32768 + i%(61000-32768)) }

func newRunner(cfg *model.Config, arts []*compiler.Artifacts, eng Engine) *runner {
	r := &runner{
		cfg:    cfg,
		engine: eng,
		arts:   map[string]*compiler.Artifacts{},
		loaded: map[string]datapath{},
		byID:   map[string]*model.Endpoint{},
		byAddr: map[netip.Addr]*model.Endpoint{},
	}
	for _, a := range arts {
		r.arts[a.Node] = a
	}
	for _, ep := range cfg.Endpoints {
		r.byID[ep.ID()] = ep
		for _, a := range ep.Addresses {
			r.byAddr[a.Unmap()] = ep
		}
	}
	return r
}

type runner struct {
	cfg    *model.Config
	engine Engine
	arts   map[string]*compiler.Artifacts
	loaded map[string]datapath // by node, loaded on first use
	byID   map[string]*model.Endpoint
	byAddr map[netip.Addr]*model.Endpoint
}

func (r *runner) close() {
	for _, dp := range r.loaded {
		dp.close()
	}
}

// datapathOf returns node's loaded datapath, loading it on first use: one
// per node for the whole run, so that state carries from packet to packet.
func (r *runner) datapathOf(node string) (datapath, *compiler.Manifest, error) {
	a := r.arts[node]
	if a == nil {
		return nil, nil, fmt.Errorf("node %s was not compiled", node)
	}
	if dp, ok := r.loaded[node]; ok {
		return dp, a.Manifest, nil
	}
	var dp datapath
	var err error
	if r.engine == EngineKernel {
		dp, err = loadKernel(a)
	} else {
		dp, err = loadVM(a)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: %w", node, err)
	}
	r.loaded[node] = dp
	return dp, a.Manifest, nil
}

// peer is one side of a test's connection: an address and the endpoint
// that has it, if any.
type peer struct {
	addr netip.Addr
	ep   *model.Endpoint
}

// addresses returns the addresses ref (a test's from or to) stands for: an
// endpoint's, or the one written; nil for a service, which stands for
// either family.
func (r *runner) addresses(ref string) []netip.Addr {
	if a, err := netip.ParseAddr(ref); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	if ep := r.byID[ref]; ep != nil {
		return ep.Addresses
	}
	return nil
}

// resolve reads a test's from or to for a connection in family. A
// non-empty reason means the test cannot run.
func (r *runner) resolve(ref, family string) (peer, string) {
	if strings.HasPrefix(ref, "svc:") {
		return peer{}, "services are not supported yet"
	}
	if a, err := netip.ParseAddr(ref); err == nil {
		a = a.Unmap()
		if !model.HasFamily([]netip.Addr{a}, family) {
			// compiler/load reports such a test; a configuration built
			// another way may still have one.
			return peer{}, fmt.Sprintf("%s is not an %s address", ref, family)
		}
		return peer{addr: a, ep: r.byAddr[a]}, ""
	}
	ep := r.byID[ref]
	if ep == nil {
		// compiler/load has checked that tests name endpoints that exist.
		return peer{}, fmt.Sprintf("no endpoint %s", ref)
	}
	// The endpoint's first address of the family, as its addresses are
	// listed.
	for _, a := range ep.Addresses {
		if a = a.Unmap(); model.HasFamily([]netip.Addr{a}, family) {
			return peer{addr: a, ep: ep}, ""
		}
	}
	return peer{}, fmt.Sprintf("endpoint %s has no %s address", ref, family)
}

func (r *runner) test(t *model.Test, sport uint16) (Result, error) {
	res := Result{
		Name: t.Name, From: t.From, To: t.To, Protocol: string(t.Protocol), Port: t.Port,
		Expect: t.Expect, Backends: t.Backends, Position: t.Pos.String(),
	}
	notRun := func(why string) (Result, error) {
		res.Status, res.Message = NotRun, why
		return res, nil
	}
	if len(t.Backends) > 0 {
		res.Expect = "[" + strings.Join(t.Backends, ", ") + "]"
		return notRun("services are not supported yet: a test that expects backends cannot run")
	}
	switch t.Protocol {
	case model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP, model.ProtoICMP, model.ProtoICMPv6:
	default:
		return notRun(fmt.Sprintf("protocol %s is not supported", t.Protocol))
	}
	family := t.PickFamily(r.addresses(t.From), r.addresses(t.To))
	if family == "IPv4" && t.Protocol == model.ProtoICMPv6 {
		return notRun("ICMPv6 is carried over IPv6, and the test asks for IPv4")
	}
	res.Family = family
	src, why := r.resolve(t.From, family)
	if why != "" {
		return notRun("from: " + why)
	}
	dst, why := r.resolve(t.To, family)
	if why != "" {
		return notRun("to: " + why)
	}
	if src.ep == nil && dst.ep == nil {
		res.Status = Fail
		res.Message = "neither from nor to is an endpoint or an endpoint's address, so no program ebpfc emits sees this connection; name an endpoint"
		return res, nil
	}
	dport := t.Port
	if t.Protocol == model.ProtoICMP || t.Protocol == model.ProtoICMPv6 {
		dport = 0
	}
	fwd := packet{proto: t.Protocol, src: netip.AddrPortFrom(src.addr, sport), dst: netip.AddrPortFrom(dst.addr, dport)}
	fp, err := r.carry("forward", fwd, []hop{{src.ep, "egress"}, {dst.ep, "ingress"}})
	res.Packets = append(res.Packets, fp)
	if err != nil {
		return res, err
	}
	fwdDropped := dropped(fp)
	if t.Expect == "deny" {
		if fwdDropped != nil {
			res.Status = Pass
		} else {
			res.Status = Fail
			res.Message = "want deny, but the forward packet passed every program"
		}
		return res, nil
	}
	if fwdDropped != nil {
		res.Status = Fail
		res.Message = "want allow, but the forward packet was dropped by " + fwdDropped.where()
		return res, nil
	}
	rp, err := r.carry("reply", fwd.reply(), []hop{{dst.ep, "egress"}, {src.ep, "ingress"}})
	res.Packets = append(res.Packets, rp)
	if err != nil {
		return res, err
	}
	if d := dropped(rp); d != nil {
		res.Status = Fail
		res.Message = "want allow: the forward packet passed, but the reply was dropped by " + d.where()
		return res, nil
	}
	res.Status = Pass
	return res, nil
}

// hop is a policy program a packet goes through: the program enforcing
// dir for ep. A nil ep (an address no endpoint has) is no hop.
type hop struct {
	ep  *model.Endpoint
	dir string
}

// dropped returns the step that dropped p, or nil.
func dropped(p Packet) *Step {
	for i := range p.Steps {
		if p.Steps[i].Verdict == "drop" {
			return &p.Steps[i]
		}
	}
	return nil
}

func (s *Step) where() string {
	return fmt.Sprintf("%s on %s (%s)", s.Program, s.Node, s.Decision)
}

// carry runs p through the programs of hops in order, each on the packet
// as the one before left it, and stops at the first drop.
func (r *runner) carry(kind string, p packet, hops []hop) (Packet, error) {
	out := Packet{Kind: kind, Summary: p.String(), Steps: []Step{}}
	frame, err := p.frame()
	if err != nil {
		return out, err
	}
	for _, h := range hops {
		if h.ep == nil {
			continue
		}
		st, next, err := r.step(h, frame)
		if err != nil {
			return out, err
		}
		out.Steps = append(out.Steps, st)
		if st.Verdict == "drop" {
			break
		}
		if len(next) > 0 {
			frame = next
		}
	}
	return out, nil
}

// tcDirection is the tc hook direction, on the endpoint's host-side
// device, of the program that enforces policy direction dir: packets the
// endpoint sends arrive at tc ingress, packets for it leave at tc egress.
func tcDirection(dir string) string {
	if dir == "egress" {
		return "ingress"
	}
	return "egress"
}

// programFor finds in man the tc program that enforces dir for ep, by its
// attachment.
func programFor(man *compiler.Manifest, ep *model.Endpoint, dir string) (string, error) {
	for _, p := range man.Programs {
		for _, a := range p.Attach {
			if a.Hook == "tc" && a.Endpoint == ep.ID() && a.Direction == tcDirection(dir) {
				return p.Name, nil
			}
		}
	}
	return "", fmt.Errorf("node %s has no tc %s program for endpoint %s", man.Node, tcDirection(dir), ep.ID())
}

// The datapath's statistics maps (docs/datapath.md): per-CPU arrays of
// {packets, bytes}, keyed by rule cookie and by drop reason.
const (
	ruleStatsMap = "rule_stats"
	dropStatsMap = "drop_stats"
)

// step runs one program on frame and reads from the counters what decided.
func (r *runner) step(h hop, frame []byte) (Step, []byte, error) {
	dp, man, err := r.datapathOf(h.ep.Node)
	if err != nil {
		return Step{}, nil, err
	}
	prog, err := programFor(man, h.ep, h.dir)
	if err != nil {
		return Step{}, nil, err
	}
	st := Step{Node: man.Node, Program: prog, Endpoint: h.ep.ID(), Direction: h.dir}
	rulesBefore, err := dp.counters(ruleStatsMap)
	if err != nil {
		return st, nil, err
	}
	dropsBefore, err := dp.counters(dropStatsMap)
	if err != nil {
		return st, nil, err
	}
	ret, out, err := dp.run(prog, frame)
	if err != nil {
		return st, nil, fmt.Errorf("node %s: %s: %w", man.Node, prog, err)
	}
	st.Return = int32(ret)
	switch st.Return {
	case tcActUnspec, tcActOK, tcActRedirect:
		st.Verdict = "pass"
	case tcActShot:
		st.Verdict = "drop"
	default:
		return st, nil, fmt.Errorf("node %s: %s returned %d, which is not a tc action the datapath uses", man.Node, prog, st.Return)
	}
	rulesAfter, err := dp.counters(ruleStatsMap)
	if err != nil {
		return st, nil, err
	}
	dropsAfter, err := dp.counters(dropStatsMap)
	if err != nil {
		return st, nil, err
	}
	st.Decision = decide(man, h, st.Verdict, increased(rulesBefore, rulesAfter), increased(dropsBefore, dropsAfter))
	return st, out, nil
}

// tc actions (TC_ACT_*, the same numbers as TCX_*).
const (
	tcActUnspec   = -1
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

// increased lists the indices whose counter grew.
func increased(before, after []uint64) []uint32 {
	var out []uint32
	for i := range after {
		var b uint64
		if i < len(before) {
			b = before[i]
		}
		if after[i] > b {
			out = append(out, uint32(i))
		}
	}
	return out
}

// decide names what decided a verdict from the counters that moved: the
// rule cookie (the lowest, should more than one move), else the drop
// reason, else whether the direction is enforced at all.
func decide(man *compiler.Manifest, h hop, verdict string, cookies, reasons []uint32) Decision {
	var d Decision
	if len(reasons) > 0 && int(reasons[0]) < len(man.DropReasons) {
		d.Reason = man.DropReasons[reasons[0]]
	}
	if len(cookies) > 0 {
		id := cookies[0]
		d.Cookie = id
		d.Kind = "uncounted"
		for _, c := range man.Cookies {
			if c.ID != id {
				continue
			}
			d.Kind, d.Audit, d.Position = c.Kind, c.Audit, c.Position
			switch c.Kind {
			case "default-deny":
				d.Endpoint, d.Direction = c.Endpoint, c.Direction
			case "deny":
				d.Policy, d.Rule = c.Policy, fmt.Sprintf("%sDeny[rule %d]", c.Direction, c.Rule)
			default:
				d.Policy, d.Rule = c.Policy, fmt.Sprintf("%s[rule %d]", c.Direction, c.Rule)
			}
		}
		return d
	}
	if d.Reason != "" {
		d.Kind = "drop"
		return d
	}
	if verdict == "pass" && !enforced(man, h) {
		d.Kind, d.Endpoint, d.Direction, d.Position = "open", h.ep.ID(), h.dir, h.ep.Pos.String()
		return d
	}
	d.Kind = "uncounted"
	return d
}

// enforced reports whether some policy enforces h's direction on its
// endpoint: such a direction has a default deny, with its cookie.
func enforced(man *compiler.Manifest, h hop) bool {
	for _, c := range man.Cookies {
		if c.Kind == "default-deny" && c.Endpoint == h.ep.ID() && c.Direction == h.dir {
			return true
		}
	}
	return false
}
