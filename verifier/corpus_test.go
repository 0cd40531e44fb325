package verifier_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/tools/txtar"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/verifier"
)

// generated is one node compiled from a golden case or an example: every
// program the tests generate, which both verifiers must accept.
type generated struct {
	name string // case/node
	art  *compiler.Artifacts
}

// compileCorpus compiles every golden case that is not an error case and
// every example directory, for every node.
func compileCorpus(t testing.TB) []generated {
	t.Helper()
	var out []generated
	paths, err := filepath.Glob("../golden/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, p := range paths {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fs := fstest.MapFS{}
		var names []string
		isErr := false
		for _, f := range ar.Files {
			switch {
			case f.Name == "out/errors":
				isErr = true
			case strings.HasSuffix(f.Name, ".cue") || strings.HasSuffix(f.Name, ".json"):
				if !strings.HasPrefix(f.Name, "out/") {
					fs[f.Name] = &fstest.MapFile{Data: f.Data}
					names = append(names, f.Name)
				}
			}
		}
		if isErr {
			continue
		}
		cfg, err := load.LoadFS(fs, names)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		arts, err := compiler.Compile(cfg, compiler.Options{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c := strings.TrimSuffix(filepath.Base(p), ".txtar")
		for _, a := range arts {
			out = append(out, generated{c + "/" + a.Node, a})
		}
	}
	dirs, err := filepath.Glob("../examples/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, d := range dirs {
		arts, err := compiler.CompileDir(d, compiler.Options{})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		for _, a := range arts {
			out = append(out, generated{"examples/" + filepath.Base(d) + "/" + a.Node, a})
		}
	}
	return out
}

// staticFromELF verifies a node's ELF object as 'ebpfc verify' does.
func staticFromELF(t testing.TB, a *compiler.Artifacts) *verifier.Report {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(a.Files[compiler.ObjectFile]))
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifier.FromSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return verifier.Verify(c)
}

// mutant is an unsafe program both verifiers must reject.
type mutant struct {
	name string
	coll *verifier.Collection
	// want is a substring of the static verifier's message.
	want string
	// unprivileged loads it into the kernel without CAP_PERFMON and
	// CAP_SYS_ADMIN (keeping CAP_BPF and CAP_NET_ADMIN): a fully
	// privileged loader lets the kernel accept uninitialised stack reads
	// and pointers returned from tc and XDP programs, which ebpfc's
	// verifier refuses for every loader.
	unprivileged bool
}

const license = "Dual MIT/GPL"

var (
	statsMap = &verifier.Map{Name: "stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 8}
	hashMap  = &verifier.Map{Name: "conntrack", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 8, MaxEntries: 64}
	ringMap  = &verifier.Map{Name: "events", Type: ebpf.RingBuf, MaxEntries: 4096}
	progMap  = &verifier.Map{Name: "jmp", Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}
)

func one(typ ebpf.ProgramType, insns ...asm.Instruction) *verifier.Collection {
	return &verifier.Collection{
		Programs: []*verifier.Program{{Name: "prog", Type: typ, Insns: insns}},
		Maps:     []*verifier.Map{statsMap, hashMap, ringMap, progMap},
	}
}

func sockAddr(attach ebpf.AttachType, insns ...asm.Instruction) *verifier.Collection {
	c := one(ebpf.CGroupSockAddr, insns...)
	c.Programs[0].AttachType = attach
	return c
}

// lookup emits "r0 = map_lookup_elem(map, r10+keyOff)".
func lookup(m string, keyOff int32) []asm.Instruction {
	return []asm.Instruction{
		asm.LoadMapPtr(asm.R1, 0).WithReference(m),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
	}
}

func cat(parts ...any) asm.Instructions {
	var out asm.Instructions
	for _, p := range parts {
		switch v := p.(type) {
		case asm.Instruction:
			out = append(out, v)
		case []asm.Instruction:
			out = append(out, v...)
		case asm.Instructions:
			out = append(out, v...)
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return out
}

// stImm is a store of an immediate; unlike asm.StoreImm it allows 8
// bytes, which the kernel accepts (the immediate is sign-extended).
func stImm(dst asm.Register, off int16, imm int64, size asm.Size) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(size), Dst: dst, Offset: off, Constant: imm}
}

var ret0 = []asm.Instruction{asm.Mov.Imm(asm.R0, 0), asm.Return()}

// handBuilt are valid programs exercising helpers and types ebpfc's
// datapath is growing into (conntrack in an LRU hash, ring buffer events,
// packet rewrites); both verifiers must accept them.
func handBuilt() map[string]*verifier.Collection {
	tcPacket := func(n int32, body ...any) asm.Instructions {
		return cat(
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R7, asm.R6, 76, asm.Word), // data
			asm.LoadMem(asm.R8, asm.R6, 80, asm.Word), // data_end
			asm.Mov.Reg(asm.R2, asm.R7),
			asm.Add.Imm(asm.R2, n),
			asm.JGT.Reg(asm.R2, asm.R8, "out"),
			cat(body...),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		)
	}
	return map[string]*verifier.Collection{
		"conntrack_update": one(ebpf.SchedCLS, cat(
			stImm(asm.R10, -8, 0, asm.DWord),
			stImm(asm.R10, -16, 1, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference("conntrack"),
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -8),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnMapUpdateElem.Call(),
			lookup("conntrack", -8),
			asm.JEq.Imm(asm.R0, 0, "miss"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("miss"),
			asm.Return(),
		)...),
		"ringbuf_reserve_submit": one(ebpf.XDP, cat(
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Imm(asm.R2, 16),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(),
			asm.JEq.Imm(asm.R0, 0, "none"),
			stImm(asm.R0, 8, 7, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRingbufSubmit.Call(),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("none"),
			asm.Return(),
		)...),
		"ringbuf_output": one(ebpf.SchedCLS, cat(
			asm.FnKtimeGetNs.Call(),
			asm.StoreMem(asm.R10, -16, asm.R0, asm.DWord),
			asm.FnGetPrandomU32.Call(),
			asm.StoreMem(asm.R10, -8, asm.R0, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -16),
			asm.Mov.Imm(asm.R3, 16),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			ret0,
		)...),
		"skb_load_and_csum": one(ebpf.SchedCLS, cat(
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R2, 14),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -24),
			asm.Mov.Imm(asm.R4, 20),
			asm.FnSkbLoadBytes.Call(),
			asm.Mov.Imm(asm.R1, 0),
			asm.Mov.Imm(asm.R2, 0),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -24),
			asm.Mov.Imm(asm.R4, 20),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnCsumDiff.Call(),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 24),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Reg(asm.R4, asm.R0),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnL3CsumReplace.Call(),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 40),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Imm(asm.R4, 0),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnL4CsumReplace.Call(),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, 0),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -24),
			asm.Mov.Imm(asm.R4, 4),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnSkbStoreBytes.Call(),
			asm.Mov.Imm(asm.R1, 1),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		)...),
		"packet_var_offset": one(ebpf.SchedCLS, tcPacket(34,
			asm.LoadMem(asm.R9, asm.R7, 14, asm.Byte),
			asm.And.Imm(asm.R9, 0xf),
			asm.JLT.Imm(asm.R9, 5, "out"),
			asm.LSh.Imm(asm.R9, 2),
			asm.Add.Reg(asm.R7, asm.R9),
			asm.Mov.Reg(asm.R2, asm.R7),
			asm.Add.Imm(asm.R2, 18),
			asm.JGT.Reg(asm.R2, asm.R8, "out"),
			asm.LoadMem(asm.R3, asm.R7, 16, asm.Half),
			asm.StoreMem(asm.R7, 16, asm.R3, asm.Half),
			asm.FnGetSmpProcessorId.Call(),
		)...),
		"xdp_adjust_head": one(ebpf.XDP, cat(
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R2, -8),
			asm.FnXdpAdjustHead.Call(),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R3, "drop"),
			stImm(asm.R2, 0, 0, asm.DWord),
			asm.Mov.Imm(asm.R0, 2),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"),
			asm.Return(),
		)...),
		"stats_const_key_jmp32": one(ebpf.SchedCLS, cat(
			asm.LoadMem(asm.R6, asm.R1, 0, asm.Word),
			stImm(asm.R10, -8, 3, asm.Word),
			lookup("stats", -8),
			asm.JEq.Imm(asm.R0, 0, "done"),
			asm.Mov.Imm(asm.R1, 1),
			asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
			asm.AddAtomic.Mem(asm.R0, asm.R6, asm.DWord, 8),
			asm.JGT.Imm32(asm.R6, 1500, "done"),
			asm.Mov.Imm(asm.R0, 2),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("done"),
			asm.Return(),
		)...),
		"connect4_rewrite": sockAddr(ebpf.AttachCGroupInet4Connect, cat(
			asm.LoadMem(asm.R2, asm.R1, 4, asm.Word),
			asm.JNE.Imm(asm.R2, 0x0a00600a, "pass"),
			asm.Mov.Imm(asm.R2, 0x0500000a),
			asm.StoreMem(asm.R1, 4, asm.R2, asm.Word),
			asm.Mov.Imm(asm.R2, 0x5000),
			asm.StoreMem(asm.R1, 24, asm.R2, asm.Word),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("pass"),
			asm.Return(),
		)...),
	}
}

// findInsn returns the index of the first instruction from start that
// satisfies pred, failing the test when there is none: the mutation
// depends on the shape of generated code, and a test that silently
// mutated nothing would prove nothing.
func findInsn(t testing.TB, what string, insns asm.Instructions, start int, pred func(asm.Instruction) bool) int {
	t.Helper()
	for i := start; i < len(insns); i++ {
		if pred(insns[i]) {
			return i
		}
	}
	t.Fatalf("mutation %q: no matching instruction; the generated code changed shape, update the mutation", what)
	return -1
}

func isCall(fn asm.BuiltinFunc) func(asm.Instruction) bool {
	return func(in asm.Instruction) bool {
		return in.OpCode.JumpOp() == asm.Call && in.Src == 0 && in.Constant == int64(fn)
	}
}

// realMutants derives unsafe variants from programs ebpfc generates for
// examples/basic: the tc entry program (ethernet bounds check, tail call,
// drop counters) and the IPv4 policy program (IP header checks, ipcache
// and policy lookups).
func realMutants(t testing.TB) []mutant {
	t.Helper()
	arts, err := compiler.CompileDir("../examples/basic", compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := compiler.VerifierCollection(arts[0].Object)
	pick := func(suffix string) *verifier.Program {
		for _, p := range full.Programs {
			if strings.HasPrefix(p.Name, "to_") && strings.HasSuffix(p.Name, suffix) {
				return p
			}
		}
		t.Fatalf("no program to_*%s in examples/basic", suffix)
		return nil
	}
	entry, ipv4 := pick("_0"), pick("_0_ipv4")
	// mutate copies p's instructions, applies f and returns a collection
	// holding just that program and the maps (program arrays emptied, as
	// their other programs are not loaded).
	mutate := func(p *verifier.Program, f func(insns asm.Instructions) asm.Instructions) *verifier.Collection {
		insns := f(slices.Clone(p.Insns))
		// Re-resolve labelled jumps, as a compiler would after editing
		// the code: cilium/ebpf keeps an offset that is already set.
		for i := range insns {
			op := insns[i].OpCode.JumpOp()
			if insns[i].OpCode.Class().IsJump() && op != asm.Call && op != asm.Exit && insns[i].Reference() != "" {
				insns[i].Offset = -1
			}
		}
		var maps []*verifier.Map
		for _, m := range full.Maps {
			mc := *m
			mc.Slots = nil
			maps = append(maps, &mc)
		}
		return &verifier.Collection{Programs: []*verifier.Program{{Name: p.Name, Type: p.Type, Insns: insns}}, Maps: maps}
	}
	remove := func(insns asm.Instructions, i int) asm.Instructions {
		// Keep a symbol the removed instruction carried.
		if sym := insns[i].Symbol(); sym != "" && i+1 < len(insns) {
			insns[i+1] = insns[i+1].WithSymbol(sym)
		}
		return slices.Delete(insns, i, i+1)
	}
	isBoundsCheck := func(in asm.Instruction) bool {
		return in.OpCode.JumpOp() == asm.JGT && in.OpCode.Source() == asm.RegSource
	}
	firstLookup := func(insns asm.Instructions) int {
		return findInsn(t, "lookup", insns, 0, isCall(asm.FnMapLookupElem))
	}
	return []mutant{
		// A bounds check removed: the comparison stays (so the code after
		// the failure branch stays reachable) but no longer involves
		// data_end.
		{name: "real/removed_bounds_check", want: "outside the checked range", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			i := findInsn(t, "bounds check", in, 0, isBoundsCheck)
			in[i] = asm.JGT.Imm(in[i].Dst, 0x7fffffff, in[i].Reference()).WithSymbol(in[i].Symbol())
			return in
		})},
		{name: "real/removed_ip_bounds_check", want: "outside the checked range", coll: mutate(ipv4, func(in asm.Instructions) asm.Instructions {
			i := findInsn(t, "bounds check", in, 0, isBoundsCheck)
			in[i] = asm.JGT.Imm(in[i].Dst, 0x7fffffff, in[i].Reference()).WithSymbol(in[i].Symbol())
			return in
		})},
		// A null check removed: the lookup result is compared with 1.
		{name: "real/removed_null_check", want: "may be NULL", coll: mutate(ipv4, func(in asm.Instructions) asm.Instructions {
			i := firstLookup(in)
			j := findInsn(t, "null check", in, i, func(x asm.Instruction) bool {
				return x.OpCode.JumpOp() == asm.JEq && x.OpCode.Source() == asm.ImmSource && x.Constant == 0
			})
			in[j].Constant = 1
			return in
		})},
		{name: "real/packet_read_past_checked_range", want: "outside the checked range", coll: mutate(ipv4, func(in asm.Instructions) asm.Instructions {
			i := findInsn(t, "bounds check", in, 0, isBoundsCheck)
			j := findInsn(t, "first packet load", in, i, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.LdXClass && x.Src != asm.R10 })
			in[j].Offset += 512
			return in
		})},
		{name: "real/map_value_read_out_of_bounds", want: "invalid access to the value of map", coll: mutate(ipv4, func(in asm.Instructions) asm.Instructions {
			i := firstLookup(in)
			j := findInsn(t, "map value load", in, i, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.LdXClass && x.Src != asm.R10 })
			in[j].Offset += 64
			return in
		})},
		{name: "real/tail_call_through_wrong_map", want: "which bpf_tail_call#12 does not take", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			i := findInsn(t, "tail call", in, 0, isCall(asm.FnTailCall))
			j := findInsn(t, "r2 map load", in, i-3, func(x asm.Instruction) bool { return x.IsLoadFromMap() && x.Dst == asm.R2 })
			in[j] = in[j].WithReference("drop_stats")
			return in
		})},
		{name: "real/key_not_initialised", want: "is not initialised on this path", unprivileged: true, coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			i := firstLookup(in)
			j := findInsn(t, "key store", in, i-6, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.StClass && x.Dst == asm.R10 })
			return remove(in, j)
		})},
		{name: "real/uninitialised_register", want: "is read but not initialised", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			// At the start only r1 (the context) and r10 hold anything.
			sym := in[0].Symbol()
			in[0] = in[0].WithSymbol("")
			return slices.Insert(in, 0, asm.Mov.Reg(asm.R0, asm.R3).WithSymbol(sym))
		})},
		{name: "real/bad_ctx_offset", want: "no field there", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			j := findInsn(t, "data load", in, 0, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.LdXClass && x.Offset == 76 })
			in[j].Offset = 88 // __sk_buff.family: socket programs only
			return in
		})},
		{name: "real/ctx_pointer_arithmetic", want: "modified context pointer", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			j := findInsn(t, "data load", in, 0, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.LdXClass && x.Offset == 76 })
			add := asm.Add.Imm(in[j].Src, 4)
			in[j].Offset -= 4
			return slices.Insert(in, j, add)
		})},
		{name: "real/stack_below_frame", want: "the stack is the 512 bytes below r10", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			j := findInsn(t, "key store", in, 0, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.StClass && x.Dst == asm.R10 })
			in[j].Offset = -516
			return in
		})},
		{name: "real/stack_above_frame", want: "the stack is the 512 bytes below r10", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			j := findInsn(t, "key store", in, 0, func(x asm.Instruction) bool { return x.OpCode.Class() == asm.StClass && x.Dst == asm.R10 })
			in[j].Offset = 8
			return in
		})},
		{name: "real/helper_not_for_tc", want: "cannot call bpf_xdp_adjust_head#44", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			j := firstLookup(in)
			in[j].Constant = int64(asm.FnXdpAdjustHead)
			return in
		})},
		{name: "real/key_is_a_number", want: "must point to the", coll: mutate(ipv4, func(in asm.Instructions) asm.Instructions {
			i := firstLookup(in)
			j := findInsn(t, "key pointer", in, i-3, func(x asm.Instruction) bool {
				return x.OpCode.ALUOp() == asm.Mov && x.Dst == asm.R2 && x.Src == asm.R10
			})
			in[j] = asm.Mov.Imm(asm.R2, 64).WithSymbol(in[j].Symbol())
			return in
		})},
		{name: "real/frame_pointer_written", want: "r10 (the frame pointer) is read-only", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			i := firstLookup(in)
			return slices.Insert(in, i, asm.Add.Imm(asm.R10, -8))
		})},
		{name: "real/returns_ctx_pointer", want: "returns a pointer", unprivileged: true, coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			// Keep the context in a stack slot the program does not use,
			// and return it instead of the first constant verdict.
			j := findInsn(t, "return value", in, 0, func(x asm.Instruction) bool {
				return x.OpCode.ALUOp() == asm.Mov && x.OpCode.Source() == asm.ImmSource && x.Dst == asm.R0
			})
			in[j] = asm.LoadMem(asm.R0, asm.R10, -504, asm.DWord).WithSymbol(in[j].Symbol())
			sym := in[0].Symbol()
			in[0] = in[0].WithSymbol("")
			return slices.Insert(in, 0, asm.StoreMem(asm.R10, -504, asm.R1, asm.DWord).WithSymbol(sym))
		})},
		{name: "real/unreachable_code", want: "unreachable instruction", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			return append(in, ret0...)
		})},
		{name: "real/falls_off_the_end", want: "neither exit nor a jump", coll: mutate(entry, func(in asm.Instructions) asm.Instructions {
			return append(in, asm.Mov.Imm(asm.R0, 0))
		})},
	}
}

// handMutants are small unsafe programs, one kind of mistake each.
func handMutants() []mutant {
	tc := func(insns ...any) *verifier.Collection { return one(ebpf.SchedCLS, cat(insns...)...) }
	return []mutant{
		{name: "uninitialised_stack_read", want: "reads uninitialised stack", unprivileged: true,
			coll: tc(asm.LoadMem(asm.R0, asm.R10, -8, asm.DWord), asm.Mov.Imm(asm.R0, 0), asm.Return())},
		{name: "back_edge", want: "back edge", coll: tc(
			asm.Mov.Imm(asm.R0, 0).WithSymbol("loop"),
			asm.Ja.Label("loop"),
		)},
		{name: "divide_by_pointer", want: "pointer", coll: tc(asm.Mov.Imm(asm.R0, 1), asm.Div.Reg(asm.R0, asm.R1), asm.Return())},
		{name: "divide_by_zero_immediate", want: "division by zero", coll: tc(asm.Mov.Imm(asm.R0, 1), asm.Div.Imm(asm.R0, 0), asm.Return())},
		{name: "jump_out_of_range", want: "jump out of range", coll: tc(
			asm.Instruction{OpCode: asm.Ja.Op(asm.ImmSource), Offset: 100}, ret0)},
		{name: "ctx_write_read_only_field", want: "read-only", coll: tc(
			asm.Mov.Imm(asm.R2, 0), asm.StoreMem(asm.R1, 0, asm.R2, asm.Word), ret0)},
		{name: "xdp_ctx_write", want: "read-only", coll: one(ebpf.XDP, cat(
			asm.Mov.Imm(asm.R2, 0), asm.StoreMem(asm.R1, 0, asm.R2, asm.Word), ret0)...)},
		{name: "pkt_end_arithmetic", want: "pointer arithmetic on r2 (pkt_end)", coll: tc(
			asm.LoadMem(asm.R2, asm.R1, 80, asm.Word), asm.Add.Imm(asm.R2, 1), ret0)},
		{name: "scalar_dereference", want: "is a scalar", coll: tc(
			asm.Mov.Imm(asm.R0, 0), asm.LoadMem(asm.R0, asm.R0, 0, asm.Word), asm.Return())},
		{name: "argument_clobbered_by_call", want: "r3 is read but not initialised", coll: tc(
			asm.Mov.Imm(asm.R3, 1), asm.FnKtimeGetNs.Call(), asm.Mov.Reg(asm.R0, asm.R3), asm.Return())},
		{name: "exit_without_r0", want: "r0 is not set at exit", coll: tc(asm.Return())},
		{name: "misaligned_stack_store", want: "misaligned stack write", coll: tc(
			stImm(asm.R10, -6, 0, asm.Word), ret0)},
		{name: "narrow_pointer_spill", want: "invalid size of register spill", coll: tc(
			asm.StoreMem(asm.R10, -8, asm.R1, asm.Word), ret0)},
		{name: "null_branch_dereference", want: "is a scalar", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord), lookup("conntrack", -8),
			asm.JNE.Imm(asm.R0, 0, "ok"),
			asm.LoadMem(asm.R0, asm.R0, 0, asm.Word),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("ok"), asm.Return())},
		{name: "map_value_negative_offset", want: "invalid access to the value of map", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord), lookup("conntrack", -8),
			asm.JEq.Imm(asm.R0, 0, "miss"),
			asm.LoadMem(asm.R0, asm.R0, -4, asm.Word),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("miss"), asm.Return())},
		{name: "arithmetic_before_null_check", want: "before its null check", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord), lookup("conntrack", -8),
			asm.Add.Imm(asm.R0, 4), ret0)},
		{name: "key_past_frame", want: "the stack is the 512 bytes below r10", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord), lookup("conntrack", -4), ret0)},
		{name: "lookup_in_program_array", want: "which bpf_map_lookup_elem#1 does not take", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord), lookup("jmp", -8), ret0)},
		{name: "update_value_not_initialised", want: "is not initialised on this path", unprivileged: true, coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference("conntrack"),
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -8),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnMapUpdateElem.Call(), ret0)},
		{name: "skb_load_bytes_size_too_big", want: "the stack is the 512 bytes below r10", coll: tc(
			asm.Mov.Imm(asm.R2, 0),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -8),
			asm.Mov.Imm(asm.R4, 16),
			asm.FnSkbLoadBytes.Call(), ret0)},
		{name: "skb_load_bytes_unbounded_size", want: "size is unbounded", coll: tc(
			asm.LoadMem(asm.R4, asm.R1, 0, asm.Word),
			asm.JEq.Imm(asm.R4, 0, "out"),
			asm.Mov.Imm(asm.R2, 0),
			asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -8),
			asm.FnSkbLoadBytes.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())},
		{name: "ringbuf_output_past_initialised", want: "the stack is the 512 bytes below r10", coll: tc(
			stImm(asm.R10, -8, 0, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 16), asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(), ret0)},
		{name: "ringbuf_record_leaked", want: "neither submitted nor discarded", coll: tc(
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Imm(asm.R2, 8), asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(), ret0)},
		{name: "ringbuf_reserve_variable_size", want: "must be a known constant size", coll: tc(
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(), ret0)},
		{name: "ringbuf_submit_stack_pointer", want: "must be a ring buffer record", coll: tc(
			asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRingbufSubmit.Call(), ret0)},
		{name: "ringbuf_record_write_past_end", want: "invalid access to memory", coll: tc(
			asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
			asm.Mov.Imm(asm.R2, 8), asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(),
			asm.JEq.Imm(asm.R0, 0, "none"),
			stImm(asm.R0, 8, 1, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 0),
			asm.FnRingbufDiscard.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("none"), asm.Return())},
		{name: "sock_addr_bad_return", want: "outside [0, 1]", coll: sockAddr(ebpf.AttachCGroupInet4Connect,
			asm.Mov.Imm(asm.R0, 2), asm.Return())},
		{name: "sock_addr_ip6_in_connect4", want: "not available", coll: sockAddr(ebpf.AttachCGroupInet4Connect,
			asm.LoadMem(asm.R2, asm.R1, 8, asm.Word), asm.Mov.Imm(asm.R0, 1), asm.Return())},
		{name: "sock_addr_helper_not_allowed", want: "cannot call bpf_redirect#23", coll: sockAddr(ebpf.AttachCGroupInet4Connect,
			asm.Mov.Imm(asm.R1, 1), asm.Mov.Imm(asm.R2, 0), asm.FnRedirect.Call(), asm.Mov.Imm(asm.R0, 1), asm.Return())},
		{name: "packet_write_past_check_xdp", want: "outside the checked range", coll: one(ebpf.XDP, cat(
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2), asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R3, "drop"),
			stImm(asm.R2, 4, 0, asm.DWord),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("drop"), asm.Return())...)},
		{name: "packet_pointer_after_adjust_head", want: "is a scalar", coll: one(ebpf.XDP, cat(
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R7, asm.R6, 0, asm.Word),
			asm.LoadMem(asm.R8, asm.R6, 4, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R7), asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R8, "drop"),
			asm.Mov.Reg(asm.R1, asm.R6), asm.Mov.Imm(asm.R2, 4),
			asm.FnXdpAdjustHead.Call(),
			asm.LoadMem(asm.R0, asm.R7, 0, asm.Word),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("drop"), asm.Return())...)},
		{name: "packet_offset_may_be_negative", want: "out of bounds", coll: tc(
			asm.LoadMem(asm.R2, asm.R1, 76, asm.Word),
			asm.LoadMem(asm.R3, asm.R1, 80, asm.Word),
			asm.LoadMem(asm.R4, asm.R1, 0, asm.Word),
			asm.LSh.Imm(asm.R4, 32), asm.ArSh.Imm(asm.R4, 32),
			asm.Add.Reg(asm.R2, asm.R4),
			asm.Mov.Reg(asm.R5, asm.R2), asm.Add.Imm(asm.R5, 4),
			asm.JGT.Reg(asm.R5, asm.R3, "out"),
			asm.LoadMem(asm.R0, asm.R2, 0, asm.Word),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())},
	}
}

func allMutants(t testing.TB) []mutant {
	return append(realMutants(t), handMutants()...)
}

// TestGeneratedProgramsPass runs the static verifier over the ELF object
// of every node the golden cases and examples compile to.
func TestGeneratedProgramsPass(t *testing.T) {
	progs := 0
	for _, g := range compileCorpus(t) {
		rep := staticFromELF(t, g.art)
		if err := rep.Err(); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
		progs += len(rep.Programs)
	}
	if progs < 30 {
		t.Errorf("only %d generated programs; the corpus shrank", progs)
	}
}

func TestHandBuiltProgramsPass(t *testing.T) {
	for name, c := range handBuilt() {
		if err := verifier.Verify(c).Err(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMutantsRejected requires every mutant to be rejected, for the reason
// it was built for.
func TestMutantsRejected(t *testing.T) {
	ms := allMutants(t)
	if len(ms) < 30 {
		t.Fatalf("only %d mutants", len(ms))
	}
	for _, m := range ms {
		rep := verifier.Verify(m.coll)
		errs := rep.Errors()
		if len(errs) == 0 {
			t.Errorf("%s: accepted", m.name)
			continue
		}
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e.Msg, m.want)
		}
		if !found {
			t.Errorf("%s: rejected, but no error mentions %q:\n%v", m.name, m.want, errs)
		}
	}
}
