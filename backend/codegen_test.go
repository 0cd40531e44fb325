package backend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// The modules below are written with the IR builder the way the lowering
// writes them. Every op carries a distinct line of a pretend CUE file so
// tests can follow instructions back to the op they came from.

func genPos(line int) source.Pos { return source.Pos{File: "codegen.cue", Line: line, Col: 3} }

// XDP verdicts used by genLPMModule.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTx   = 3 // stands in for "source unknown", so tests can tell it apart
)

var ipCacheMap = &ir.Map{
	Name:       "ip_cache",
	Type:       ir.MapLPMTrie,
	Key:        ir.Struct{Name: "ip_cache_key", Fields: []ir.Field{{Name: "prefixlen", Size: 4}, {Name: "addr", Size: 4}}},
	Value:      ir.Struct{Name: "ip_cache_value", Fields: []ir.Field{{Name: "deny", Size: 4}}},
	MaxEntries: 16,
	Flags:      1, // BPF_F_NO_PREALLOC, which LPM tries need
	Pos:        genPos(1),
}

// genLPMModule parses Ethernet, IPv4 (with options, through a variable
// header length) and TCP with bounds checks, looks the source address up in
// an LPM trie and decides:
//
//	truncated → drop; not IPv4/TCP → pass; source unknown → tx;
//	source marked deny → drop; destination port 22 → drop; else pass.
func genLPMModule() *ir.Module {
	pb := ir.NewProgram("lpm_policy", ir.ProgXDP, "xdp", genPos(2))
	entry := pb.Block("entry")
	ctx := entry.Ctx(genPos(3))
	data := entry.CtxLoad(genPos(4), ctx, "data")
	end := entry.CtxLoad(genPos(5), ctx, "data_end")
	entry.Bounds(genPos(6), data, 34, end, "eth", "short")

	eth := pb.Block("eth")
	etype := eth.Swap16(genPos(7), ir.V(eth.Load(genPos(7), data, 12, 2)))
	eth.Branch(genPos(8), ir.Ne, etype, ir.C(0x0800), "pass", "ipv4")

	ip := pb.Block("ipv4")
	ihl := ip.And(genPos(9), ir.V(ip.Load(genPos(9), data, 14, 1)), ir.C(0xf))
	ip.Branch(genPos(10), ir.Lt, ihl, ir.C(5), "short", "ipv4_hdr")

	hdr := pb.Block("ipv4_hdr")
	proto := hdr.Load(genPos(11), data, 23, 1)
	saddr := hdr.Load(genPos(12), data, 26, 4)
	hlen := hdr.Shl(genPos(13), ir.V(ihl), ir.C(2))
	l3 := hdr.PacketAdd(genPos(14), data, hdr.Const(genPos(14), 14), 14)
	l4 := hdr.PacketAdd(genPos(15), l3, hlen, 60)
	hdr.Bounds(genPos(16), l4, 4, end, "l4", "short")

	l4b := pb.Block("l4")
	l4b.Branch(genPos(17), ir.Ne, proto, ir.C(6), "pass", "tcp")

	tcp := pb.Block("tcp")
	dport := tcp.Swap16(genPos(18), ir.V(tcp.Load(genPos(18), l4, 2, 2)))
	v := tcp.MapLookup(genPos(19), "ip_cache", ir.C(32), ir.V(saddr))
	tcp.IfNull(genPos(20), v, "unknown", "known")

	known := pb.Block("known")
	deny := known.Load(genPos(21), v, 0, 4)
	known.Branch(genPos(22), ir.Ne, deny, ir.C(0), "drop", "port")

	port := pb.Block("port")
	port.Branch(genPos(23), ir.Eq, dport, ir.C(22), "drop", "pass")

	pb.Block("pass").Return(genPos(24), xdpPass)
	pb.Block("drop").Return(genPos(25), xdpDrop)
	pb.Block("unknown").Return(genPos(26), xdpTx)
	pb.Block("short").Return(genPos(27), xdpDrop)

	return &ir.Module{Name: "lpm", Maps: []*ir.Map{ipCacheMap}, Programs: []*ir.Program{pb.Program()}}
}

// spillWords is how many 16-bit payload words genSpillModule keeps live at
// once: more than the eight allocatable registers, across helper calls that
// leave only four of them usable.
const spillWords = 14

var flowsMap = &ir.Map{
	Name: "flows",
	Type: ir.MapHash,
	// A u16 then a u32 leaves two bytes of padding the code must zero.
	Key:        ir.Struct{Name: "flow_key", Fields: []ir.Field{{Name: "a", Size: 2}, {Name: "b", Size: 4}}},
	Value:      ir.Struct{Name: "flow_value", Fields: []ir.Field{{Name: "x", Size: 8}}},
	MaxEntries: 64,
	Pos:        genPos(40),
}

// genSpillModule loads spillWords words of payload, calls helpers while all
// of them are live, writes and reads a hash map, and returns a checksum of
// everything (see spillChecksum for the same computation in Go).
func genSpillModule() *ir.Module {
	pb := ir.NewProgram("spill_heavy", ir.ProgSchedCLS, "tc", genPos(41))
	entry := pb.Block("entry")
	ctx := entry.Ctx(genPos(42))
	data := entry.CtxLoad(genPos(43), ctx, "data")
	end := entry.CtxLoad(genPos(44), ctx, "data_end")
	entry.Bounds(genPos(45), data, 14+2*spillWords, end, "load", "short")

	load := pb.Block("load")
	var w [spillWords]ir.Value
	for i := range w {
		w[i] = load.Load(genPos(46), data, int16(14+2*i), 2)
	}
	now := load.KtimeNs(genPos(47))
	load.MapUpdate(genPos(48), "flows", 0, ir.V(w[0]), ir.V(w[1]), ir.V(w[2]))
	del := load.MapDelete(genPos(49), "flows", ir.V(w[3]), ir.V(w[4]))
	found := load.MapLookup(genPos(50), "flows", ir.V(w[0]), ir.V(w[1]))
	load.IfNull(genPos(51), found, "short", "found")

	f := pb.Block("found")
	x := f.Load(genPos(52), found, 0, 8)
	f.Store(genPos(53), found, 0, 8, ir.V(w[5]))
	// sum = x + del + Σ w[i]*(i+1), mixing in other ALU ops.
	sum := f.Add(genPos(54), ir.V(x), ir.V(del))
	for i := range w {
		t := f.Mul(genPos(55), ir.V(w[i]), ir.C(int64(i+1)))
		sum = f.Add(genPos(56), ir.V(sum), ir.V(t))
	}
	sum = f.Xor(genPos(57), ir.V(sum), ir.V(f.Swap32(genPos(57), ir.V(w[6]))))
	sum = f.Sub(genPos(58), ir.V(sum), ir.V(f.Arsh(genPos(58), ir.V(w[7]), ir.C(3))))
	sum = f.Or(genPos(59), ir.V(sum), ir.V(f.Shr(genPos(59), ir.V(w[8]), ir.C(1))))
	// The clock is never zero after boot; the branch keeps now live across
	// the map calls.
	f.Branch(genPos(60), ir.Eq, now, ir.C(0), "short", "done")

	done := pb.Block("done")
	done.ReturnValue(genPos(61), done.And(genPos(61), ir.V(sum), ir.C(0x7fffffff)))

	pb.Block("short").Return(genPos(62), 1<<20)
	return &ir.Module{Name: "spill", Maps: []*ir.Map{flowsMap}, Programs: []*ir.Program{pb.Program()}}
}

// spillChecksum computes what genSpillModule returns for payload, given the
// map is empty before the run (so the delete returns -ENOENT).
func spillChecksum(payload []byte) uint32 {
	var w [spillWords]uint64
	for i := range w {
		// Loads read host (little-endian) order.
		w[i] = uint64(payload[2*i]) | uint64(payload[2*i+1])<<8
	}
	enoent := int64(2)
	sum := w[2] + uint64(-enoent)
	for i := range w {
		sum += w[i] * uint64(i+1)
	}
	swapped := uint64(uint32(w[6])>>24 | uint32(w[6])>>8&0xff00 | uint32(w[6])<<8&0xff0000 | uint32(w[6])<<24)
	sum ^= swapped
	sum -= uint64(int64(w[7]) >> 3)
	sum |= w[8] >> 1
	return uint32(sum & 0x7fffffff)
}

var jmpMap = &ir.Map{
	Name:       "jmp",
	Type:       ir.MapProgArray,
	Key:        ir.Struct{Name: "jmp_key", Fields: []ir.Field{{Name: "slot", Size: 4}}},
	Value:      ir.Struct{Name: "jmp_value", Fields: []ir.Field{{Name: "prog", Size: 4}}},
	MaxEntries: 2,
	Slots:      []string{"", "tail_target"},
	Pos:        genPos(70),
}

// tailTargetResult is what tail_target returns.
const tailTargetResult = 42

// genTailCallModule has tail_entry, which tail-calls slot 1 of jmp and, if
// the slot is empty, returns the packet length plus 1000 (a value live
// across the tail call); and tail_target, which returns 42.
func genTailCallModule() *ir.Module {
	pb := ir.NewProgram("tail_entry", ir.ProgSchedCLS, "tc", genPos(71))
	entry := pb.Block("entry")
	ctx := entry.Ctx(genPos(72))
	n := entry.CtxLoad(genPos(73), ctx, "len")
	entry.TailCall(genPos(74), ctx, "jmp", 1, "tail_target", "fallback")
	fb := pb.Block("fallback")
	fb.ReturnValue(genPos(75), fb.Add(genPos(75), ir.V(n), ir.C(1000)))

	tb := ir.NewProgram("tail_target", ir.ProgSchedCLS, "tc", genPos(76))
	tb.Block("entry").Return(genPos(77), tailTargetResult)

	return &ir.Module{Name: "tail", Maps: []*ir.Map{jmpMap}, Programs: []*ir.Program{pb.Program(), tb.Program()}}
}

var statsMap = &ir.Map{
	Name:       "stats",
	Type:       ir.MapPerCPUArray,
	Key:        ir.Struct{Name: "stats_key", Fields: []ir.Field{{Name: "index", Size: 4}}},
	Value:      ir.Struct{Name: "stats_value", Fields: []ir.Field{{Name: "packets", Size: 8}, {Name: "bytes", Size: 8}, {Name: "last_len", Size: 4}}},
	MaxEntries: 1,
	Pos:        genPos(80),
}

// genCounterModule counts packets and bytes in a per-CPU array with atomic
// adds and records the last packet's length with a plain store.
func genCounterModule() *ir.Module {
	pb := ir.NewProgram("count", ir.ProgSchedCLS, "tc", genPos(81))
	entry := pb.Block("entry")
	ctx := entry.Ctx(genPos(82))
	n := entry.CtxLoad(genPos(83), ctx, "len")
	v := entry.MapLookup(genPos(84), "stats", ir.C(0))
	entry.IfNull(genPos(85), v, "miss", "hit")
	hit := pb.Block("hit")
	hit.AtomicAdd(genPos(86), v, 0, 8, ir.C(1))
	hit.AtomicAdd(genPos(87), v, 8, 8, ir.V(n))
	hit.Store(genPos(88), v, 16, 4, ir.V(n))
	hit.Return(genPos(89), 0)
	pb.Block("miss").Return(genPos(90), 2)
	return &ir.Module{Name: "count", Maps: []*ir.Map{statsMap}, Programs: []*ir.Program{pb.Program()}}
}

// genBranchModule returns 1 when the u64 at payload offset 0 compares with b
// by cond (b a constant, or the u64 at payload offset 8 when b is nil), 0
// otherwise. With inverted, the blocks are arranged so that the layout must
// negate the condition.
func genBranchModule(cond ir.Cond, b *int64, inverted bool) *ir.Module {
	pb := ir.NewProgram("branch", ir.ProgSchedCLS, "tc", genPos(100))
	entry := pb.Block("entry")
	ctx := entry.Ctx(genPos(101))
	data := entry.CtxLoad(genPos(102), ctx, "data")
	end := entry.CtxLoad(genPos(103), ctx, "data_end")
	n := entry.CtxLoad(genPos(104), ctx, "len")
	if inverted {
		// entry falls through to ret0, so when cmp is laid out ret0 is
		// taken and its else-edge cannot fall through.
		entry.Branch(genPos(105), ir.Gt, n, ir.C(0), "bounds", "ret0")
	} else {
		entry.Jump(genPos(105), "bounds")
	}
	pb.Block("bounds").Bounds(genPos(106), data, 30, end, "cmp", "ret0")
	cmp := pb.Block("cmp")
	a := cmp.Load(genPos(107), data, 14, 8)
	bo := ir.V(cmp.Load(genPos(108), data, 22, 8))
	if b != nil {
		bo = ir.C(*b)
	}
	cmp.Branch(genPos(109), cond, a, bo, "ret1", "ret0")
	pb.Block("ret0").Return(genPos(110), 0)
	pb.Block("ret1").Return(genPos(111), 1)
	return &ir.Module{Name: "branch", Programs: []*ir.Program{pb.Program()}}
}

func mustGenerate(t *testing.T, m *ir.Module) *Object {
	t.Helper()
	o, err := Generate(m)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return o
}

func TestGenerateProgramShape(t *testing.T) {
	for _, m := range []*ir.Module{genLPMModule(), genSpillModule(), genTailCallModule(), genCounterModule()} {
		o := mustGenerate(t, m)
		if o.License != License || len(o.Maps) != len(m.Maps) || len(o.Programs) != len(m.Programs) {
			t.Fatalf("%s: object %+v does not mirror the module", m.Name, o)
		}
		for i, p := range o.Programs {
			ip := m.Programs[i]
			if p.Name != ip.Name || p.Section != ip.Section || p.Pos != ip.Pos {
				t.Errorf("%s: program %d is %s/%s, want %s/%s", m.Name, i, p.Name, p.Section, ip.Name, ip.Section)
			}
			if got := p.Insns.Name(); got != p.Name {
				t.Errorf("%s: first instruction symbol %q, want %q", p.Name, got, p.Name)
			}
			for k, ins := range p.Insns {
				pos, ok := ins.Source().(source.Pos)
				if !ok || !pos.IsValid() {
					t.Errorf("%s: instruction %d (%v) has no source position", p.Name, k, ins)
				}
				if ins.IsLoadFromMap() && ins.Reference() == "" {
					t.Errorf("%s: map load %d references no map", p.Name, k)
				}
			}
			// Jumps resolve: Marshal fails on a reference without a symbol.
			if err := p.Insns.Marshal(&bytes.Buffer{}, binary.LittleEndian); err != nil && !strings.Contains(err.Error(), "map") {
				t.Errorf("%s: marshal: %v", p.Name, err)
			}
		}
	}
	if got := mustGenerate(t, genLPMModule()).Programs[0].Type.String(); got != "XDP" {
		t.Errorf("lpm_policy type %s, want XDP", got)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	for _, build := range []func() *ir.Module{genLPMModule, genSpillModule, genTailCallModule, genCounterModule} {
		first := Listing(mustGenerate(t, build()))
		for range 5 {
			if again := Listing(mustGenerate(t, build())); !bytes.Equal(first, again) {
				t.Fatalf("listing differs between runs:\n%s\n---\n%s", first, again)
			}
		}
	}
}

// insnText renders a program's instructions one per line, without positions,
// for tests that look for instruction patterns.
func insnText(p *Program) string {
	var b strings.Builder
	for _, ins := range p.Insns {
		if s := ins.Symbol(); s != "" {
			fmt.Fprintf(&b, "%s:\n", displaySymbol(s))
		}
		fmt.Fprintf(&b, "%s\n", formatInsn(ins))
	}
	return b.String()
}

// wantSequence checks that the lines of want appear in text in order and
// adjacent.
func wantSequence(t *testing.T, text string, want ...string) {
	t.Helper()
	if !strings.Contains(text, strings.Join(want, "\n")+"\n") {
		t.Errorf("missing sequence\n\t%s\nin\n%s", strings.Join(want, "\n\t"), text)
	}
}

func TestSelectBoundsAndLookup(t *testing.T) {
	p := mustGenerate(t, genLPMModule()).Programs[0]
	text := insnText(p)
	// The bounds pattern the verifier understands, through a scratch copy.
	if !strings.Contains(text, "r0 += 34\nif r0 > ") {
		t.Errorf("no bounds check of 34 bytes:\n%s", text)
	}
	// The LPM key: prefix length as an immediate, address from a register,
	// at the bottom of the frame; no padding to zero in this key.
	wantSequence(t, text,
		"*(u32 *)(r10 - 8) = 32",
	)
	for _, want := range []string{"r1 = map[ip_cache] ll", "r2 = r10", "r2 += -8", "call bpf_map_lookup_elem#1"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	if strings.Contains(text, "*(u64 *)(r10 - 8) = 0") {
		t.Errorf("key without padding is zeroed:\n%s", text)
	}
	// Network-order loads become host order with be16.
	if !strings.Contains(text, "= be16 ") {
		t.Errorf("no byte swap:\n%s", text)
	}
	// The constant 14 is an immediate, not a register.
	if !strings.Contains(text, " += 14\n") {
		t.Errorf("packet add of a constant does not use an immediate:\n%s", text)
	}
}

func TestSelectPaddingAndUpdate(t *testing.T) {
	p := mustGenerate(t, genSpillModule()).Programs[0]
	text := insnText(p)
	// flow_key is {u16 a; u16 pad; u32 b}: the word holding the padding is
	// zeroed before the fields go in.
	if !strings.Contains(text, "*(u64 *)(r10 - 112) = 0\n*(u16 *)(r10 - 112) = ") {
		t.Errorf("key padding not zeroed before the fields:\n%s", text)
	}
	for _, want := range []string{"r3 = r10", "r3 += -104", "r4 = 0", "call bpf_map_update_elem#2", "call bpf_map_delete_elem#3", "call bpf_ktime_get_ns#5"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestSelectTailCall(t *testing.T) {
	p := mustGenerate(t, genTailCallModule()).Programs[0]
	text := insnText(p)
	// The context dies at the call, so it stays in r1 where it arrived;
	// the length is live across the call, so it sits in r6–r9.
	wantSequence(t, text, "r6 = *(u32 *)(r1 + 0)", "r2 = map[jmp] ll", "r3 = 1", "call bpf_tail_call#12", "fallback:", "r6 += 1000")
}

func TestSelectAtomicAndStore(t *testing.T) {
	text := insnText(mustGenerate(t, genCounterModule()).Programs[0])
	for _, want := range []string{"lock *(u64 *)(r", ") += r5", "*(u32 *)(r"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	if !strings.Contains(text, "r5 = 1\nlock *(u64 *)(") {
		t.Errorf("constant addend not materialised in the scratch register:\n%s", text)
	}
}

func TestSelectBranchLayout(t *testing.T) {
	b := int64(7)
	big := int64(1) << 40
	cases := []struct {
		name     string
		cond     ir.Cond
		b        *int64
		inverted bool
		want     []string
	}{
		// The else-edge falls through: the condition is kept.
		{"keep", ir.Lt, &b, false, []string{"if r1 < 7 goto ret1"}},
		// The then-edge falls through: the condition is negated.
		{"invert", ir.Lt, &b, true, []string{"if r1 >= 7 goto ret0"}},
		{"invert signed", ir.SLe, nil, true, []string{"if r1 s> r2 goto ret0"}},
		// JSet has no negation: keep it and jump over.
		{"set", ir.Set, &b, true, []string{"if r1 & 7 goto ret1", "goto ret0"}},
		// A constant that does not fit 32 bits goes through a scratch register.
		{"wide", ir.Eq, &big, false, []string{"r5 = 0x10000000000 ll", "if r1 == r5 goto ret1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := insnText(mustGenerate(t, genBranchModule(tc.cond, tc.b, tc.inverted)).Programs[0])
			wantSequence(t, text, tc.want...)
		})
	}
}

func TestSelectCtxStoreAvoidsStoreImmediate(t *testing.T) {
	pb := ir.NewProgram("mark", ir.ProgSchedCLS, "tc", genPos(1))
	e := pb.Block("entry")
	ctx := e.Ctx(genPos(2))
	e.CtxStore(genPos(3), ctx, "mark", ir.C(0x42))
	e.Return(genPos(4), 0)
	text := insnText(mustGenerate(t, &ir.Module{Programs: []*ir.Program{pb.Program()}}).Programs[0])
	wantSequence(t, text, "r5 = 66", "*(u32 *)(r1 + 8) = r5", "r0 = 0", "exit")
}

func TestSelectWideImmediateALU(t *testing.T) {
	pb := ir.NewProgram("wide", ir.ProgSchedCLS, "tc", genPos(1))
	e := pb.Block("entry")
	ctx := e.Ctx(genPos(2))
	n := e.CtxLoad(genPos(3), ctx, "len")
	s := e.Add(genPos(4), ir.V(n), ir.C(1<<33))
	r := e.Sub(genPos(5), ir.C(100), ir.V(s)) // constant on the left
	e.ReturnValue(genPos(6), r)
	text := insnText(mustGenerate(t, &ir.Module{Programs: []*ir.Program{pb.Program()}}).Programs[0])
	wantSequence(t, text, "r5 = 0x200000000 ll", "r1 += r5")
	wantSequence(t, text, "r0 = 100", "r0 -= r1", "r1 = r0")
}

func TestGenerateErrors(t *testing.T) {
	pb := ir.NewProgram("bad", ir.ProgSchedCLS, "tc", genPos(1))
	e := pb.Block("entry")
	e.Param(genPos(2), "node_ip")
	v := e.Param(genPos(3), "node_port")
	e.ReturnValue(genPos(4), v)
	_, err := Generate(&ir.Module{Programs: []*ir.Program{pb.Program()}})
	if err == nil || !strings.Contains(err.Error(), "codegen.cue:3:3: node constant node_port was not folded") {
		t.Errorf("got %v, want an unfolded-constant error at codegen.cue:3:3", err)
	}

	pb = ir.NewProgram("nomap", ir.ProgSchedCLS, "tc", genPos(10))
	e = pb.Block("entry")
	e.MapLookup(genPos(11), "missing", ir.C(0))
	e.Return(genPos(12), 0)
	_, err = Generate(&ir.Module{Programs: []*ir.Program{pb.Program()}})
	if err == nil || !strings.Contains(err.Error(), `codegen.cue:11:3: unknown map "missing"`) {
		t.Errorf("got %v, want an unknown-map error", err)
	}
}

func TestHelperName(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnMapLookupElem: "bpf_map_lookup_elem",
		asm.FnKtimeGetNs:    "bpf_ktime_get_ns",
		asm.FnGetPrandomU32: "bpf_get_prandom_u32",
		asm.FnTailCall:      "bpf_tail_call",
	} {
		if got := helperName(fn); got != want {
			t.Errorf("helperName(%v) = %q, want %q", fn, got, want)
		}
	}
}
