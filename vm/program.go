package vm

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// op is what the interpreter does for one instruction. Decoding turns the
// many encodings of asm.Instruction into this dense enumeration once, so the
// interpreter's switch compiles to a jump table.
type op uint8

const (
	opInvalid op = iota
	// Second half of a 64-bit immediate load: never executed, never a jump
	// target.
	opLddwHigh

	// ALU, 64-bit then 32-bit, in the same order.
	opAdd64
	opSub64
	opMul64
	opDiv64
	opSDiv64
	opOr64
	opAnd64
	opLsh64
	opRsh64
	opNeg64
	opMod64
	opSMod64
	opXor64
	opMov64
	opMovSX8To64
	opMovSX16To64
	opMovSX32To64
	opArsh64

	opAdd32
	opSub32
	opMul32
	opDiv32
	opSDiv32
	opOr32
	opAnd32
	opLsh32
	opRsh32
	opNeg32
	opMod32
	opSMod32
	opXor32
	opMov32
	opMovSX8To32
	opMovSX16To32
	opArsh32

	// Byte order: le/be truncate or swap to the width, bswap always swaps.
	opLE16
	opLE32
	opLE64
	opBE16
	opBE32
	opBE64

	// Jumps, 64-bit compares then 32-bit compares, in the same order.
	opJa
	opJeq
	opJgt
	opJge
	opJset
	opJne
	opJsgt
	opJsge
	opJlt
	opJle
	opJslt
	opJsle

	opJeq32
	opJgt32
	opJge32
	opJset32
	opJne32
	opJsgt32
	opJsge32
	opJlt32
	opJle32
	opJslt32
	opJsle32

	opCall      // helper call, number in imm
	opCallx     // helper call, number in the dst register
	opTailCall  // bpf_tail_call
	opCallLocal // bpf-to-bpf call, target in target
	opExit

	opLdx   // dst = *(size *)(src + off)
	opLdxSX // dst = *(signed size *)(src + off)
	opSt    // *(size *)(dst + off) = imm
	opStx   // *(size *)(dst + off) = src
	opAtomicAdd
	opAtomicOr
	opAtomicAnd
	opAtomicXor
	opXchg
	opCmpXchg
	opLoadAcquire
	opStoreRelease

	opLddw       // dst = imm (64-bit)
	opLdMap      // dst = map handle
	opLdMapValue // dst = &map value + offset
	opLdAbs      // r0 = ntoh(packet[imm])
	opLdInd      // r0 = ntoh(packet[src + imm])
)

// insn is one decoded instruction. Instructions are indexed by raw offset
// (a 64-bit immediate load takes two slots), as jump offsets count them.
type insn struct {
	op     op
	dst    uint8
	src    uint8
	size   uint8 // bytes, for memory operations
	useImm bool  // the operand is imm rather than src
	fetch  bool  // atomic with BPF_FETCH
	off    int16
	imm    int64
	target int32 // jump or call target
	m      *Map  // map loads
	helper asm.BuiltinFunc
	orig   int // index in the asm.Instructions the program was built from
}

// program is a decoded, linked and validated program.
type program struct {
	name  string
	typ   ebpf.ProgramType
	insns asm.Instructions // as given, for tracing and messages
	code  []insn
}

// LoadError is a program the interpreter refuses before running it: an
// encoding the ISA reserves, a jump out of the program, an unknown map.
type LoadError struct {
	Program string
	Index   int    // instruction index in the program's asm.Instructions
	Insn    string // the instruction as cilium/ebpf prints it
	Msg     string
}

func (e *LoadError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("program %s: %s", e.Program, e.Msg)
	}
	return fmt.Sprintf("program %s: instruction %d (%s): %s", e.Program, e.Index, e.Insn, e.Msg)
}

// aluOps maps an ALU operation to its 64-bit op; the 32-bit op is at the
// same distance from opAdd32.
var aluOps = map[asm.ALUOp]op{
	asm.Add: opAdd64, asm.Sub: opSub64, asm.Mul: opMul64, asm.Div: opDiv64,
	asm.SDiv: opSDiv64, asm.Or: opOr64, asm.And: opAnd64, asm.LSh: opLsh64,
	asm.RSh: opRsh64, asm.Neg: opNeg64, asm.Mod: opMod64, asm.SMod: opSMod64,
	asm.Xor: opXor64, asm.Mov: opMov64, asm.MovSX8: opMovSX8To64,
	asm.MovSX16: opMovSX16To64, asm.MovSX32: opMovSX32To64, asm.ArSh: opArsh64,
}

var jumpOps = map[asm.JumpOp]op{
	asm.JEq: opJeq, asm.JGT: opJgt, asm.JGE: opJge, asm.JSet: opJset,
	asm.JNE: opJne, asm.JSGT: opJsgt, asm.JSGE: opJsge, asm.JLT: opJlt,
	asm.JLE: opJle, asm.JSLT: opJslt, asm.JSLE: opJsle,
}

// decode links and validates insns into a program. maps resolves map
// references by name.
func decode(name string, typ ebpf.ProgramType, insns asm.Instructions, maps map[string]*Map) (*program, error) {
	p := &program{name: name, typ: typ, insns: insns}
	if len(insns) == 0 {
		return nil, &LoadError{Program: name, Index: -1, Msg: "has no instructions"}
	}
	// Raw offsets and symbols, for jumps and calls by reference.
	raw := make([]int, len(insns)+1)
	symbols := map[string]int{}
	for i := range insns {
		raw[i+1] = raw[i] + int(insns[i].Width())
		if s := insns[i].Symbol(); s != "" {
			symbols[s] = raw[i]
		}
	}
	p.code = make([]insn, raw[len(insns)])
	fail := func(i int, format string, args ...any) error {
		return &LoadError{Program: name, Index: i, Insn: fmt.Sprint(insns[i]), Msg: fmt.Sprintf(format, args...)}
	}
	for i := range insns {
		ins := &insns[i]
		pc := raw[i]
		d, err := decodeOne(ins, maps)
		if err != "" {
			return nil, fail(i, "%s", err)
		}
		d.orig = i
		// Resolve targets.
		switch d.op {
		case opCallLocal:
			t := pc + 1 + int(ins.Constant)
			if ref := ins.Reference(); ref != "" && ins.Constant == -1 {
				s, ok := symbols[ref]
				if !ok {
					return nil, fail(i, "calls function %s, which the program does not contain", ref)
				}
				t = s
			}
			d.target = int32(t)
		case opJa, opJeq, opJgt, opJge, opJset, opJne, opJsgt, opJsge, opJlt, opJle, opJslt, opJsle,
			opJeq32, opJgt32, opJge32, opJset32, opJne32, opJsgt32, opJsge32, opJlt32, opJle32, opJslt32, opJsle32:
			off := int(ins.Offset)
			if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
				off = int(ins.Constant)
			}
			t := pc + 1 + off
			if ref := ins.Reference(); ref != "" && (off == -1) {
				s, ok := symbols[ref]
				if !ok {
					return nil, fail(i, "jumps to label %s, which the program does not define", ref)
				}
				t = s
			}
			d.target = int32(t)
		}
		p.code[pc] = d
		if ins.OpCode.IsDWordLoad() {
			p.code[pc+1] = insn{op: opLddwHigh, orig: i}
		}
	}
	// Targets must land on an instruction, not outside the program or in
	// the middle of a 64-bit load.
	for pc := range p.code {
		d := &p.code[pc]
		switch {
		case d.op >= opJa && d.op <= opJsle32, d.op == opCallLocal:
			t := int(d.target)
			if t < 0 || t >= len(p.code) {
				return nil, fail(d.orig, "jump target %d is outside the program (0..%d)", t, len(p.code)-1)
			}
			if p.code[t].op == opLddwHigh {
				return nil, fail(d.orig, "jump target %d is the second half of a 64-bit load", t)
			}
		}
	}
	return p, nil
}

func validReg(r asm.Register) bool { return r <= asm.R10 }

// decodeOne decodes one instruction, or says why the encoding is refused.
// It holds every field the ISA reserves for an instruction to zero, as the
// kernel's verifier does.
func decodeOne(ins *asm.Instruction, maps map[string]*Map) (insn, string) {
	oc := ins.OpCode
	d := insn{dst: uint8(ins.Dst), src: uint8(ins.Src), off: ins.Offset, imm: ins.Constant}
	if !validReg(ins.Dst) || !validReg(ins.Src) {
		return d, fmt.Sprintf("register r%d/r%d does not exist (r0-r10)", ins.Dst, ins.Src)
	}
	writesDst := func() string {
		if ins.Dst == asm.R10 {
			return "r10 is the read-only frame pointer"
		}
		return ""
	}
	switch cls := oc.Class(); cls {
	case asm.ALUClass, asm.ALU64Class:
		aop := oc.ALUOp()
		if aop == asm.Swap {
			if ins.Src != 0 || ins.Offset != 0 {
				return d, "byte swap uses neither src nor offset; they must be 0"
			}
			var base op
			switch {
			case cls == asm.ALU64Class && oc.Endianness() == asm.BE:
				return d, "ALU64 byte swap with the source bit set is reserved"
			case cls == asm.ALU64Class: // bswap
				base = opBE16
			case oc.Endianness() == asm.LE:
				base = opLE16
			default:
				base = opBE16
			}
			switch ins.Constant {
			case 16:
				d.op = base
			case 32:
				d.op = base + 1
			case 64:
				d.op = base + 2
			default:
				return d, fmt.Sprintf("byte swap width %d is not 16, 32 or 64", ins.Constant)
			}
			return d, writesDst()
		}
		o, ok := aluOps[aop]
		if !ok {
			return d, fmt.Sprintf("unknown ALU operation %#x", uint16(aop))
		}
		if cls == asm.ALUClass {
			if o == opMovSX32To64 {
				return d, "32-bit sign-extending move from 32 bits is reserved"
			}
			if aop == asm.ArSh {
				o = opArsh32 // the 32-bit list has no MovSX32
			} else {
				o = o - opAdd64 + opAdd32
			}
		}
		d.op = o
		if ins.Offset != 0 {
			return d, fmt.Sprintf("offset %d is reserved for this ALU operation", ins.Offset)
		}
		switch {
		case aop == asm.Neg:
			if oc.Source() != asm.ImmSource || ins.Src != 0 || ins.Constant != 0 {
				return d, "neg uses neither src nor imm; they must be 0"
			}
		case aop == asm.MovSX8 || aop == asm.MovSX16 || aop == asm.MovSX32:
			if oc.Source() != asm.RegSource || ins.Constant != 0 {
				return d, "a sign-extending move takes a register and no imm"
			}
		case oc.Source() == asm.ImmSource:
			if ins.Src != 0 {
				return d, "an immediate ALU operation uses no src register; it must be 0"
			}
			d.useImm = true
		default:
			if ins.Constant != 0 {
				return d, "a register ALU operation uses no imm; it must be 0"
			}
		}
		return d, writesDst()

	case asm.JumpClass, asm.Jump32Class:
		jop := oc.JumpOp()
		switch jop {
		case asm.InvalidJumpOp:
			return d, "call and exit exist only in the 64-bit jump class"
		case asm.Ja:
			if ins.Dst != 0 || ins.Src != 0 || oc.Source() != asm.ImmSource {
				return d, "ja uses neither registers nor the source bit; they must be 0"
			}
			if cls == asm.JumpClass && ins.Constant != 0 {
				return d, "ja uses no imm; it must be 0"
			}
			if cls == asm.Jump32Class && ins.Offset != 0 {
				return d, "gotol (ja32) takes its target in imm; offset must be 0"
			}
			d.op = opJa
			return d, ""
		case asm.Exit:
			if ins.Dst != 0 || ins.Src != 0 || ins.Offset != 0 || ins.Constant != 0 || oc.Source() != asm.ImmSource {
				return d, "exit takes no operands; every field must be 0"
			}
			d.op = opExit
			return d, ""
		case asm.Call:
			if ins.Offset != 0 {
				return d, "call uses no offset; it must be 0"
			}
			if oc.Source() == asm.RegSource {
				// callx: helper number in dst.
				if ins.Src != 0 || ins.Constant != 0 {
					return d, "callx takes its target in dst; src and imm must be 0"
				}
				d.op = opCallx
				return d, ""
			}
			if ins.Dst != 0 {
				return d, "call uses no dst register; it must be 0"
			}
			switch ins.Src {
			case 0:
				d.helper = asm.BuiltinFunc(ins.Constant)
				d.op = opCall
				if d.helper == asm.FnTailCall {
					d.op = opTailCall
				}
				return d, ""
			case asm.PseudoCall:
				d.op = opCallLocal
				return d, ""
			case asm.PseudoKfuncCall:
				return d, "kfunc calls are not supported by the interpreter"
			default:
				return d, fmt.Sprintf("call with src %d is reserved", ins.Src)
			}
		}
		o, ok := jumpOps[jop]
		if !ok {
			return d, fmt.Sprintf("unknown jump operation %#x", uint8(jop))
		}
		if cls == asm.Jump32Class {
			o = o - opJeq + opJeq32
		}
		d.op = o
		if oc.Source() == asm.ImmSource {
			if ins.Src != 0 {
				return d, "an immediate jump uses no src register; it must be 0"
			}
			d.useImm = true
		} else if ins.Constant != 0 {
			return d, "a register jump uses no imm; it must be 0"
		}
		return d, ""

	case asm.LdClass:
		d.size = uint8(oc.Size().Sizeof())
		switch oc.Mode() {
		case asm.ImmMode:
			if oc.Size() != asm.DWord {
				return d, "only 64-bit immediate loads exist"
			}
			if ins.Offset != 0 {
				return d, "a 64-bit immediate load uses no offset; it must be 0"
			}
			switch ins.Src {
			case 0:
				d.op = opLddw
			case asm.PseudoMapFD, asm.PseudoMapValue:
				ref := ins.Reference()
				if ref == "" {
					if m := ins.Map(); m != nil {
						return d, "map loads must reference their map by name, not by file descriptor"
					}
					return d, "map load without a map reference"
				}
				m := maps[ref]
				if m == nil {
					return d, fmt.Sprintf("references map %s, which the collection does not define", ref)
				}
				d.m = m
				d.op = opLdMap
				if ins.Src == asm.PseudoMapValue {
					d.op = opLdMapValue
					d.imm = int64(uint64(ins.Constant) >> 32)
				}
			default:
				return d, fmt.Sprintf("64-bit immediate load with src %d (a pseudo load the interpreter does not support)", ins.Src)
			}
			return d, writesDst()
		case asm.AbsMode, asm.IndMode:
			if oc.Size() == asm.DWord {
				return d, "legacy packet loads are 1, 2 or 4 bytes"
			}
			if ins.Dst != 0 || ins.Offset != 0 {
				return d, "legacy packet loads use neither dst nor offset; they must be 0"
			}
			if oc.Mode() == asm.AbsMode {
				if ins.Src != 0 {
					return d, "an absolute packet load uses no src; it must be 0"
				}
				d.op = opLdAbs
			} else {
				d.op = opLdInd
			}
			return d, ""
		}
		return d, fmt.Sprintf("load mode %#x is reserved", uint8(oc.Mode()))

	case asm.LdXClass:
		d.size = uint8(oc.Size().Sizeof())
		if ins.Constant != 0 {
			return d, "a register load uses no imm; it must be 0"
		}
		switch oc.Mode() {
		case asm.MemMode:
			d.op = opLdx
		case asm.MemSXMode:
			if oc.Size() == asm.DWord {
				return d, "a sign-extending load of 8 bytes is reserved"
			}
			d.op = opLdxSX
		default:
			return d, fmt.Sprintf("load mode %#x is reserved", uint8(oc.Mode()))
		}
		return d, writesDst()

	case asm.StClass:
		d.size = uint8(oc.Size().Sizeof())
		if oc.Mode() != asm.MemMode {
			return d, fmt.Sprintf("store mode %#x is reserved", uint8(oc.Mode()))
		}
		if ins.Src != 0 {
			return d, "an immediate store uses no src register; it must be 0"
		}
		d.op = opSt
		return d, ""

	case asm.StXClass:
		d.size = uint8(oc.Size().Sizeof())
		switch oc.Mode() {
		case asm.MemMode:
			if ins.Constant != 0 {
				return d, "a register store uses no imm; it must be 0"
			}
			d.op = opStx
			return d, ""
		case asm.AtomicMode:
			aop := oc.AtomicOp()
			sz := oc.Size()
			rmw := true
			switch aop {
			case asm.AddAtomic, asm.FetchAdd:
				d.op = opAtomicAdd
			case asm.OrAtomic, asm.FetchOr:
				d.op = opAtomicOr
			case asm.AndAtomic, asm.FetchAnd:
				d.op = opAtomicAnd
			case asm.XorAtomic, asm.FetchXor:
				d.op = opAtomicXor
			case asm.Xchg:
				d.op = opXchg
			case asm.CmpXchg:
				d.op = opCmpXchg
			default:
				rmw = false
				switch uint32(aop) {
				case 0x1_0000:
					d.op = opLoadAcquire
				case 0x1_1000:
					d.op = opStoreRelease
				default:
					return d, fmt.Sprintf("atomic operation %#x is reserved", uint32(aop)>>8)
				}
			}
			d.fetch = uint32(aop)&0x100 != 0
			if rmw && sz != asm.Word && sz != asm.DWord {
				return d, "atomic read-modify-write operations are 4 or 8 bytes"
			}
			if d.op == opLoadAcquire {
				return d, writesDst()
			}
			if d.fetch && d.op != opCmpXchg && ins.Src == asm.R10 {
				return d, "a fetching atomic writes its src register; r10 is read-only"
			}
			return d, ""
		}
		return d, fmt.Sprintf("store mode %#x is reserved", uint8(oc.Mode()))
	}
	return d, fmt.Sprintf("opcode %#x is reserved", uint8(oc))
}
