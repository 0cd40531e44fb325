// Package explain shows why a packet gets its verdict: it compiles a
// configuration, runs one flow's packet through the programs that see it
// in ebpfc's interpreter, and reports the programs entered, the tail calls,
// every map lookup decoded by the manifest's layouts, the verdict, the drop
// reason and the rule that decided, with its CUE position.
//
// A flow between two endpoints passes the source's egress policy on the
// source's node, then the destination's ingress policy on the destination's
// node, in that order; a flow from outside a node enters through the
// node's XDP program when it has one. Explain follows the packet until a
// program drops it.
package explain

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
)

// Options control an explanation.
type Options struct {
	// Node explains only this node's part of the flow; "" explains every
	// node the flow passes.
	Node string
	// Insns records every instruction executed.
	Insns bool
}

// Report is the explanation of one flow.
type Report struct {
	Flow        string    `json:"flow"` // canonical, with endpoint names resolved to addresses
	Source      PeerInfo  `json:"source"`
	Destination PeerInfo  `json:"destination"`
	Stages      []*Stage  `json:"stages"`
	Verdict     string    `json:"verdict"` // pass or drop: the packet's fate over the stages run
	NotReached  []Planned `json:"notReached,omitempty"`
}

// PeerInfo is what the configuration says about one end of the flow.
type PeerInfo struct {
	Address  string `json:"address"`
	Port     int    `json:"port,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Node     string `json:"node,omitempty"`     // where the endpoint runs
	Position string `json:"position,omitempty"` // where the endpoint is declared
	// What describes an address that is no endpoint's: a node's address,
	// the API server, or none.
	What string `json:"what,omitempty"`
}

// Planned is a stage the packet did not reach because an earlier one
// dropped it.
type Planned struct {
	Node string `json:"node"`
	Role string `json:"role"`
}

// Stage is one program attachment the packet passes through.
type Stage struct {
	Node string `json:"node"`
	// Role says what the stage enforces: "egress policy of NS/NAME",
	// "ingress policy of NS/NAME" or "XDP on DEVICE".
	Role     string           `json:"role"`
	Attach   lower.Attachment `json:"attach"`
	Programs []*ProgramRun    `json:"programs"`
	Verdict  string           `json:"verdict"` // pass, drop, redirect
	Action   string           `json:"action"`  // TC_ACT_OK, XDP_DROP, ...
	Return   int64            `json:"return"`
	Insns    int              `json:"instructions"`
	Rule     *Rule            `json:"rule,omitempty"`
	Drop     string           `json:"dropReason,omitempty"`
	Changes  []MapChange      `json:"mapChanges"`
	Printk   []string         `json:"printk,omitempty"`
}

// ProgramRun is one program entered, directly or by a tail call.
type ProgramRun struct {
	Name     string `json:"name"`
	Position string `json:"position"`
	// TailCallSlot is the program's slot in the node's program array.
	TailCallSlot *int    `json:"tailCallSlot,omitempty"`
	Path         []Block `json:"path"`
	Events       []Event `json:"events"`
	Insns        []Insn  `json:"insns,omitempty"`
}

// Block is a basic block of the program entered, with the CUE position of
// its first instruction. Step is the number of instructions the stage had
// executed before it.
type Block struct {
	Step     int    `json:"step"`
	Label    string `json:"label"`
	Position string `json:"position"`
}

// Event is a map lookup, a tail call or another helper call.
type Event struct {
	Step     int    `json:"step"`
	Kind     string `json:"kind"` // lookup, tail-call, helper
	Insn     int    `json:"insn"` // the instruction's number in the listing (datapath.s)
	Position string `json:"position"`
	Map      string `json:"map,omitempty"`
	// Key and Value of a lookup; Value is nil on a miss.
	Key   *Decoded `json:"key,omitempty"`
	Value *Decoded `json:"value,omitempty"`
	// Slot and Target of a tail call; Target is "" when it failed.
	Slot   *uint32 `json:"slot,omitempty"`
	Target string  `json:"target,omitempty"`
	// Helper and its return value, for other helper calls.
	Helper string `json:"helper,omitempty"`
	Ret    *int64 `json:"ret,omitempty"`
}

// Insn is one instruction executed (with Options.Insns).
type Insn struct {
	Step     int    `json:"step"`
	Index    int    `json:"index"` // the instruction's number in the listing (datapath.s)
	Text     string `json:"text"`  // as the listing shows it
	Position string `json:"position"`
}

// MapChange is one map entry the stage changed, decoded.
type MapChange struct {
	Map    string    `json:"map"`
	Key    Decoded   `json:"key"`
	Before []Decoded `json:"before"` // nil: absent; one value per CPU for per-CPU maps
	After  []Decoded `json:"after"`
}

// Rule is the rule (or default) that decided: the cookie whose rule_stats
// counter the packet changed, as the manifest describes it.
type Rule struct {
	Cookie    uint32 `json:"cookie"`
	Kind      string `json:"kind"` // allow, deny, default-deny
	Policy    string `json:"policy,omitempty"`
	Direction string `json:"direction"`
	Rule      int    `json:"rule"` // index in the policy's rules of its kind and direction; -1 for a default
	Endpoint  string `json:"endpoint,omitempty"`
	Audit     bool   `json:"audit,omitempty"`
	Position  string `json:"position"`
}

func ruleOf(c compiler.ManifestCookie) *Rule {
	return &Rule{Cookie: c.ID, Kind: c.Kind, Policy: c.Policy, Direction: c.Direction, Rule: c.Rule,
		Endpoint: c.Endpoint, Audit: c.Audit, Position: c.Position}
}

// RuleList is the policy field the rule sits in: ingress, egressDeny, ...
func (r *Rule) RuleList() string {
	if r.Kind == "deny" {
		return r.Direction + "Deny"
	}
	return r.Direction
}

// summary is the rule in a few words, without its position.
func (r *Rule) summary() string {
	var s string
	if r.Policy != "" {
		s = fmt.Sprintf("%s by %s %s[%d]", r.Kind, r.Policy, r.RuleList(), r.Rule)
	} else {
		s = fmt.Sprintf("%s of %s %s", r.Kind, r.Endpoint, r.Direction)
	}
	if r.Audit {
		s += ", audit"
	}
	return s
}

// Explain runs flow through the configuration's datapath. Endpoint names
// in the flow are resolved against cfg. Mistakes in the flow are
// *FlowError; a node that does not exist or that the flow does not pass
// is a *compiler.UsageError; configuration errors are source.Errors; any
// other error is a bug.
func Explain(cfg *model.Config, flow *Flow, opts Options) (*Report, error) {
	f := *flow
	src, err := resolvePeer(cfg, &f, &f.Src, f.Dst)
	if err != nil {
		return nil, err
	}
	dst, err := resolvePeer(cfg, &f, &f.Dst, f.Src)
	if err != nil {
		return nil, err
	}
	if f.Src.Addr.Is4() != f.Dst.Addr.Is4() {
		return nil, &FlowError{Text: f.Text, Col: f.Dst.Col, Msg: fmt.Sprintf("the source %s and the destination %s are of different IP families", f.Src.Addr, f.Dst.Addr)}
	}
	if opts.Node != "" && !slices.ContainsFunc(cfg.Nodes, func(n *model.Node) bool { return n.Name == opts.Node }) {
		var names []string
		for _, n := range cfg.Nodes {
			names = append(names, n.Name)
		}
		return nil, &compiler.UsageError{Msg: fmt.Sprintf("no node %q in the configuration (nodes: %s)", opts.Node, strings.Join(names, ", "))}
	}
	r := &Report{Flow: f.String(), Source: peerInfo(cfg, f.Src, src), Destination: peerInfo(cfg, f.Dst, dst)}
	plan := planStages(src, dst)
	if opts.Node != "" {
		plan = slices.DeleteFunc(plan, func(p planned) bool { return p.node != opts.Node })
	}
	if len(plan) == 0 {
		return nil, &compiler.UsageError{Msg: noStagesMessage(f, src, dst, opts.Node)}
	}
	frame, err := f.Frame()
	if err != nil {
		return nil, err
	}
	nodes := map[string]*nodeRun{}
	r.Verdict = "pass"
	for i, p := range plan {
		nr := nodes[p.node]
		if nr == nil {
			if nr, err = newNodeRun(cfg, p.node); err != nil {
				return nil, err
			}
			nodes[p.node] = nr
		}
		att, ok := p.find(nr.art.Manifest)
		if !ok {
			if p.xdp {
				continue // the node has no XDP program
			}
			return nil, fmt.Errorf("node %s: no program attached for the %s", p.node, p.role)
		}
		role := p.role
		if p.xdp {
			role = "XDP on " + att.Device
		}
		st, err := nr.run(att, frame, role, opts)
		if err != nil {
			return nil, err
		}
		r.Stages = append(r.Stages, st)
		if st.Verdict == "drop" {
			r.Verdict = "drop"
			for _, q := range plan[i+1:] {
				if !q.xdp {
					r.NotReached = append(r.NotReached, Planned{Node: q.node, Role: q.role})
				}
			}
			break
		}
	}
	return r, nil
}

// resolvePeer gives p an address when the flow names an endpoint, and
// returns the endpoint p is (nil when none has its address).
func resolvePeer(cfg *model.Config, f *Flow, p *Peer, other Peer) (*model.Endpoint, error) {
	if p.Endpoint == "" {
		for _, e := range cfg.Endpoints {
			for _, a := range e.Addresses {
				if a.Unmap() == p.Addr.Unmap() {
					return e, nil
				}
			}
		}
		return nil, nil
	}
	i := slices.IndexFunc(cfg.Endpoints, func(e *model.Endpoint) bool { return e.ID() == p.Endpoint })
	if i < 0 {
		return nil, &FlowError{Text: f.Text, Col: p.Col, Msg: fmt.Sprintf("no endpoint %s in the configuration%s", p.Endpoint, endpointHint(cfg, p.Endpoint))}
	}
	e := cfg.Endpoints[i]
	want6 := f.Proto == "icmpv6" || (other.Addr.IsValid() && other.Addr.Is6())
	for _, a := range e.Addresses {
		if a.Is6() == want6 {
			p.Addr = a
			return e, nil
		}
	}
	family := "IPv4"
	if want6 {
		family = "IPv6"
	}
	return nil, &FlowError{Text: f.Text, Col: p.Col, Msg: fmt.Sprintf("endpoint %s has no %s address (%s)", p.Endpoint, family, e.Pos)}
}

// endpointHint lists the endpoints of the namespace the name asks for.
func endpointHint(cfg *model.Config, name string) string {
	ns, _, _ := strings.Cut(name, "/")
	var have []string
	for _, e := range cfg.Endpoints {
		if e.Namespace == ns {
			have = append(have, e.ID())
		}
	}
	if len(have) == 0 {
		var nss []string
		for _, e := range cfg.Endpoints {
			nss = append(nss, e.Namespace)
		}
		slices.Sort(nss)
		return fmt.Sprintf("; namespaces with endpoints: %s", strings.Join(slices.Compact(nss), ", "))
	}
	if len(have) > 8 {
		have = append(have[:8], "...")
	}
	return fmt.Sprintf("; %s has %s", ns, strings.Join(have, ", "))
}

func peerInfo(cfg *model.Config, p Peer, e *model.Endpoint) PeerInfo {
	pi := PeerInfo{Address: p.Addr.String()}
	if p.HasPort || p.Port != 0 {
		pi.Port = int(p.Port)
	}
	if e != nil {
		pi.Endpoint, pi.Node, pi.Position = e.ID(), e.Node, e.Pos.String()
		return pi
	}
	a := p.Addr.Unmap()
	for _, n := range cfg.Nodes {
		if slices.Contains(n.Addresses, a) {
			pi.What = "address of node " + n.Name
			return pi
		}
	}
	if slices.Contains(cfg.Cluster.APIServer, a) {
		pi.What = "kube-apiserver"
		return pi
	}
	pi.What = "no endpoint"
	for _, pfx := range cfg.Cluster.PodCIDRs {
		if pfx.Contains(a) {
			pi.What = "no endpoint, in pod CIDR " + pfx.String()
		}
	}
	return pi
}

// planned is a stage the flow should pass.
type planned struct {
	node     string
	role     string
	xdp      bool
	endpoint string
	// tcDirection is the hook's direction on the endpoint's device.
	tcDirection string
}

// find is the attachment of the planned stage in man.
func (p planned) find(man *compiler.Manifest) (lower.Attachment, bool) {
	for _, prog := range man.Programs {
		for _, a := range prog.Attach {
			switch {
			case p.xdp && a.Hook == "xdp":
				return a, true
			case !p.xdp && a.Hook == "tc" && a.Endpoint == p.endpoint && a.Direction == p.tcDirection:
				return a, true
			}
		}
	}
	return lower.Attachment{}, false
}

// planStages lists the stages of a flow from src to dst (either may be nil:
// no endpoint), in the order the packet meets them.
func planStages(src, dst *model.Endpoint) []planned {
	var out []planned
	if src != nil {
		// Packets the endpoint sends arrive on tc ingress of its device.
		out = append(out, planned{node: src.Node, role: "egress policy of " + src.ID(), endpoint: src.ID(), tcDirection: "ingress"})
	}
	if dst != nil {
		if src == nil || src.Node != dst.Node {
			// The packet enters the node through a device; the first
			// device with an XDP program stands for it.
			out = append(out, planned{node: dst.Node, role: "XDP", xdp: true})
		}
		// Packets the host sends into the endpoint leave on tc egress of
		// its device.
		out = append(out, planned{node: dst.Node, role: "ingress policy of " + dst.ID(), endpoint: dst.ID(), tcDirection: "egress"})
	}
	return out
}

func noStagesMessage(f Flow, src, dst *model.Endpoint, node string) string {
	if src == nil && dst == nil {
		return fmt.Sprintf("neither %s nor %s is an endpoint's address, so no policy program sees this flow; write an endpoint's address or NAMESPACE/NAME", f.Src.Addr, f.Dst.Addr)
	}
	var where []string
	if src != nil {
		where = append(where, fmt.Sprintf("the source %s is on %s", src.ID(), src.Node))
	}
	if dst != nil {
		where = append(where, fmt.Sprintf("the destination %s is on %s", dst.ID(), dst.Node))
	}
	return fmt.Sprintf("the flow does not pass node %s: %s; drop --node or name one of those nodes", node, strings.Join(where, " and "))
}

// nodeRun is one node's compiled datapath in the interpreter; its maps keep
// their changes from one stage to the next, as in the kernel.
type nodeRun struct {
	art     *artifact.Artifact
	machine *vm.Machine
	dec     *decoder
	progs   map[string]*progInfo
}

// progInfo is what the compiler's object and listing say about each
// instruction of a program, by its index in the program's instructions.
type progInfo struct {
	labels []string // the listing's block label where a block starts
	pos    []string // CUE position
	slot   []int    // instruction number in the listing (8-byte slots)
	text   []string // the listing's text
}

func newNodeRun(cfg *model.Config, node string) (*nodeRun, error) {
	arts, err := compiler.Compile(cfg, compiler.Options{Node: node})
	if err != nil {
		return nil, err
	}
	if len(arts) != 1 {
		return nil, fmt.Errorf("compiling node %s gave %d nodes", node, len(arts))
	}
	a, err := artifact.Parse(node, arts[0].Files)
	if err != nil {
		return nil, err
	}
	m, err := a.Machine(vm.Options{})
	if err != nil {
		return nil, err
	}
	nr := &nodeRun{art: a, machine: m, dec: newDecoder(a.Manifest), progs: map[string]*progInfo{}}
	listing := parseListing(arts[0].Files[compiler.ListingFile])
	for _, p := range arts[0].Object.Programs {
		spec := a.Spec.Programs[p.Name]
		if spec == nil || len(spec.Instructions) != len(p.Insns) {
			continue // the object and the ELF disagree: use the ELF's line info
		}
		pi := &progInfo{
			labels: make([]string, len(p.Insns)), pos: make([]string, len(p.Insns)),
			slot: make([]int, len(p.Insns)), text: make([]string, len(p.Insns)),
		}
		off := 0
		for i, ins := range p.Insns {
			pi.labels[i] = strings.TrimPrefix(ins.Symbol(), ".L")
			pi.pos[i] = "-"
			if src := ins.Source(); src != nil {
				pi.pos[i] = src.String()
			}
			pi.slot[i] = off
			pi.text[i] = listing[p.Name][off]
			if pi.text[i] == "" {
				pi.text[i] = fmt.Sprint(ins)
			}
			off += int(ins.Width())
		}
		nr.progs[p.Name] = pi
	}
	return nr, nil
}

// listingLine is an instruction line of the listing: "   124: r0 = r1   ; file:line:col".
var listingLine = regexp.MustCompile(`^\s*([0-9]+): (.*?)(?:\s+; \S+)?$`)

// parseListing reads the instruction text of every program in a listing,
// by program and instruction number.
func parseListing(b []byte) map[string]map[int]string {
	out := map[string]map[int]string{}
	var cur map[int]string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "; program "); ok {
			name, _, _ := strings.Cut(rest, ":")
			cur = map[int]string{}
			out[name] = cur
			continue
		}
		if m := listingLine.FindStringSubmatch(line); m != nil && cur != nil {
			n, _ := strconv.Atoi(m[1])
			cur[n] = m[2]
		}
	}
	return out
}

// position is the CUE position of a program's instruction.
func (nr *nodeRun) position(prog string, idx int, ins *asm.Instruction) string {
	if pi := nr.progs[prog]; pi != nil && idx >= 0 && idx < len(pi.pos) {
		return pi.pos[idx]
	}
	if ins != nil && ins.Source() != nil {
		return ins.Source().String()
	}
	return "-"
}

// slot is the listing's number of a program's instruction.
func (nr *nodeRun) slot(prog string, idx int) int {
	if pi := nr.progs[prog]; pi != nil && idx >= 0 && idx < len(pi.slot) {
		return pi.slot[idx]
	}
	return idx
}

// run runs frame through the program attached at att.
func (nr *nodeRun) run(att lower.Attachment, frame []byte, role string, opts Options) (*Stage, error) {
	man := nr.art.Manifest
	st := &Stage{Node: man.Node, Role: role, Attach: att}
	typ, ok := nr.machine.ProgramType(att.Program)
	if !ok {
		return nil, fmt.Errorf("node %s: the manifest attaches %s, which the object does not have", man.Node, att.Program)
	}
	var ctx vm.Context
	switch typ {
	case ebpf.XDP:
		ctx = &vm.XDP{Packet: slices.Clone(frame), IngressIfindex: 1}
	case ebpf.SchedCLS, ebpf.SchedACT:
		ctx = vm.NewSKB(slices.Clone(frame))
	default:
		return nil, fmt.Errorf("node %s: program %s is a %s program, which takes no packets", man.Node, att.Program, typ)
	}
	rec := &recorder{nr: nr, insns: opts.Insns}
	nr.machine.SetTracer(rec)
	defer nr.machine.SetTracer(nil)
	before := nr.machine.Snapshot()
	res, err := nr.machine.Run(att.Program, ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", man.Node, err)
	}
	st.Programs = rec.runs
	st.Return = int64(int32(res.Return))
	if typ == ebpf.XDP {
		st.Return = int64(res.Return)
	}
	st.Verdict, st.Action = verdictName(typ, res.Return)
	st.Insns = res.Instructions
	st.Printk = res.Printk
	for _, c := range vm.Diff(before, nr.machine.Snapshot()) {
		st.Changes = append(st.Changes, MapChange{
			Map: c.Map, Key: nr.dec.key(c.Map, c.Key),
			Before: nr.decodeValues(c.Map, c.Before), After: nr.decodeValues(c.Map, c.After),
		})
		if len(c.Key) != 4 {
			continue
		}
		idx := uint32(number(c.Key, false))
		switch c.Map {
		case "rule_stats":
			if cookie, ok := nr.dec.cookies[idx]; ok && st.Rule == nil {
				st.Rule = ruleOf(cookie)
			}
		case "drop_stats":
			if int(idx) < len(man.DropReasons) && st.Drop == "" {
				st.Drop = man.DropReasons[idx]
			}
		}
	}
	if st.Changes == nil {
		st.Changes = []MapChange{}
	}
	return st, nil
}

func (nr *nodeRun) decodeValues(mapName string, vs [][]byte) []Decoded {
	if vs == nil {
		return nil
	}
	out := make([]Decoded, len(vs))
	for i, v := range vs {
		out[i] = nr.dec.value(mapName, v)
	}
	return out
}

// recorder turns the interpreter's trace into ProgramRuns.
type recorder struct {
	nr      *nodeRun
	insns   bool
	runs    []*ProgramRun
	cur     *ProgramRun
	steps   int
	entered bool // a tail call was taken: the next step starts a program
}

func (r *recorder) Step(s *vm.Step) {
	if r.cur == nil || r.entered || r.cur.Name != s.Program {
		r.entered = false
		r.cur = &ProgramRun{Name: s.Program, Path: []Block{}, Events: []Event{}}
		for _, p := range r.nr.art.Manifest.Programs {
			if p.Name == s.Program {
				r.cur.Position, r.cur.TailCallSlot = p.Position, p.TailCallSlot
			}
		}
		r.runs = append(r.runs, r.cur)
	}
	label := ""
	pi := r.nr.progs[s.Program]
	if pi != nil && s.Index < len(pi.labels) {
		label = pi.labels[s.Index]
	}
	if len(r.cur.Path) == 0 && label == "" {
		label = s.Program
	}
	pos := r.nr.position(s.Program, s.Index, s.Insn)
	if label != "" {
		if n := len(r.cur.Path); n == 0 || r.cur.Path[n-1].Label != label {
			r.cur.Path = append(r.cur.Path, Block{Step: r.steps, Label: label, Position: pos})
		}
	}
	if r.insns {
		text := fmt.Sprint(*s.Insn)
		if pi != nil && s.Index < len(pi.text) {
			text = pi.text[s.Index]
		}
		r.cur.Insns = append(r.cur.Insns, Insn{Step: r.steps, Index: r.nr.slot(s.Program, s.Index), Text: text, Position: pos})
	}
	r.steps++
}

func (r *recorder) event(e Event) {
	if r.cur == nil {
		return
	}
	e.Step = r.steps
	r.cur.Events = append(r.cur.Events, e)
}

func (r *recorder) MapLookup(l *vm.MapLookup) {
	key := r.nr.dec.key(l.Map, l.Key)
	e := Event{Kind: "lookup", Insn: r.nr.slot(l.Program, l.Index), Position: r.nr.position(l.Program, l.Index, nil), Map: l.Map, Key: &key}
	if l.Value != nil {
		v := r.nr.dec.value(l.Map, l.Value)
		e.Value = &v
	}
	r.event(e)
}

func (r *recorder) TailCall(t *vm.TailCall) {
	slot := t.Slot
	r.event(Event{Kind: "tail-call", Insn: r.nr.slot(t.Program, t.Index), Position: r.nr.position(t.Program, t.Index, nil), Map: t.Map, Slot: &slot, Target: t.Target})
	if t.Target != "" {
		r.entered = true
	}
}

func (r *recorder) Helper(h *vm.HelperEvent) {
	switch h.Helper {
	case asm.FnMapLookupElem, asm.FnTailCall:
		return // MapLookup and TailCall report these, decoded
	}
	ret := int64(h.Ret)
	r.event(Event{Kind: "helper", Insn: r.nr.slot(h.Program, h.Index), Position: r.nr.position(h.Program, h.Index, nil), Helper: helperName(h.Helper), Ret: &ret})
}

// helperName is a helper as C and bpftool name it: map_update_elem.
func helperName(fn asm.BuiltinFunc) string {
	s := strings.TrimPrefix(fn.String(), "Fn")
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// verdictName names a program's return value.
func verdictName(typ ebpf.ProgramType, r0 uint64) (verdict, action string) {
	if typ == ebpf.XDP {
		switch r0 {
		case 0:
			return "drop", "XDP_ABORTED"
		case 1:
			return "drop", "XDP_DROP"
		case 2:
			return "pass", "XDP_PASS"
		case 3:
			return "pass", "XDP_TX"
		case 4:
			return "redirect", "XDP_REDIRECT"
		}
		return "unknown", fmt.Sprintf("XDP action %d", r0)
	}
	switch int32(r0) {
	case -1:
		return "pass", "TC_ACT_UNSPEC"
	case 0:
		return "pass", "TC_ACT_OK"
	case 2:
		return "drop", "TC_ACT_SHOT"
	case 7:
		return "redirect", "TC_ACT_REDIRECT"
	}
	return "unknown", fmt.Sprintf("tc action %d", int32(r0))
}
