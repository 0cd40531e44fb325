package backend

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// listingComment is the column where the source position comment starts. It
// is fixed, not fitted to the longest line, so that one long instruction
// does not shift every line of a committed listing.
const listingComment = 44

// Listing renders o as assembly text for people: the maps, then every
// program with its block labels as lines and each instruction numbered by
// its 8-byte slot (the numbering of the kernel verifier's log), written in
// the C-like syntax of `bpftool prog dump xlated` and llvm-objdump, with
// the CUE position it came from in a comment column. Maps and helpers appear
// by name. The output depends only on o.
func Listing(o *Object) []byte {
	var b bytes.Buffer
	// About 40 bytes a line: growing the buffer of a large node's listing
	// as it fills would copy it many times.
	n := 0
	for _, p := range o.Programs {
		n += 40 * (len(p.Insns) + 8)
	}
	b.Grow(n)
	for _, m := range o.Maps {
		line := fmt.Sprintf("; map %s: %s, key %s, value %s, %d entries",
			m.Name, m.Type, structSummary(m.Key), structSummary(m.Value), m.MaxEntries)
		if slots := slotSummary(m.Slots); slots != "" {
			line += ", slots " + slots
		}
		writeWithPos(&b, line, m.Pos.String())
	}
	if len(o.Maps) > 0 {
		b.WriteByte('\n')
	}
	memo := newListingMemo()
	for i, p := range o.Programs {
		if i > 0 {
			b.WriteByte('\n')
		}
		slots := int(p.Insns.Size() / asm.InstructionSize)
		header := fmt.Sprintf("; program %s: %s, section %q, %d instructions, %d bytes of stack",
			p.Name, p.Type, p.Section, slots, stackDepth(p.Insns))
		writeWithPos(&b, header, p.Pos.String())
		listProgram(&b, p, memo)
	}
	return b.Bytes()
}

// listingMemo remembers the text of instructions and positions already
// formatted: a node's programs repeat the same instructions many times
// over, and formatting dominates the cost of a listing.
type listingMemo struct {
	insns map[insnKey]string
	poss  map[source.Pos]string
}

// insnKey is everything of an instruction formatInsn reads.
type insnKey struct {
	op       asm.OpCode
	dst, src asm.Register
	off      int16
	constant int64
	ref, sym string
}

func newListingMemo() *listingMemo {
	return &listingMemo{insns: make(map[insnKey]string), poss: make(map[source.Pos]string)}
}

func (m *listingMemo) insn(ins asm.Instruction) string {
	k := insnKey{op: ins.OpCode, dst: ins.Dst, src: ins.Src, off: ins.Offset, constant: ins.Constant, ref: ins.Reference(), sym: ins.Symbol()}
	if s, ok := m.insns[k]; ok {
		return s
	}
	s := formatInsn(ins)
	m.insns[k] = s
	return s
}

func (m *listingMemo) pos(src fmt.Stringer) string {
	p, ok := src.(source.Pos)
	if !ok {
		return src.String()
	}
	if s, ok := m.poss[p]; ok {
		return s
	}
	s := p.String()
	m.poss[p] = s
	return s
}

// structSummary describes a key or value layout: "8 bytes {u32 prefixlen, u32 addr}".
func structSummary(s ir.Struct) string {
	fields := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		fields[i] = fmt.Sprintf("u%d %s", 8*f.Size, f.Name)
	}
	return fmt.Sprintf("%d bytes {%s}", s.Size(), strings.Join(fields, ", "))
}

// slotSummary lists a program array's filled slots: "[1: tail_target]".
func slotSummary(slots []string) string {
	var filled []string
	for i, p := range slots {
		if p != "" {
			filled = append(filled, fmt.Sprintf("%d: %s", i, p))
		}
	}
	if len(filled) == 0 {
		return ""
	}
	return "[" + strings.Join(filled, ", ") + "]"
}

// stackDepth is the deepest r10-relative access in insns, in bytes,
// counting the buffers helpers read through r10 copies ("r2 = r10; r2 += -16").
func stackDepth(insns asm.Instructions) int {
	depth := 0
	var frameCopies uint16 // registers holding r10 exactly
	for _, ins := range insns {
		op := ins.OpCode
		cls := op.Class()
		switch {
		case cls.IsLoad() && ins.Src == asm.RFP && op.Mode() == asm.MemMode:
			depth = max(depth, -int(ins.Offset))
		case cls.IsStore() && ins.Dst == asm.RFP:
			depth = max(depth, -int(ins.Offset))
		case cls == asm.ALU64Class && op.ALUOp() == asm.Add && op.Source() == asm.ImmSource &&
			frameCopies&(1<<ins.Dst) != 0 && ins.Constant < 0:
			depth = max(depth, -int(ins.Constant))
		}
		switch {
		case cls == asm.ALU64Class && op.ALUOp() == asm.Mov && op.Source() == asm.RegSource && ins.Src == asm.RFP:
			frameCopies |= 1 << ins.Dst
		case cls.IsALU() || cls.IsLoad():
			frameCopies &^= 1 << ins.Dst
		case cls.IsJump():
			frameCopies = 0 // a conservative reset at calls and block ends
		}
	}
	return depth
}

func listProgram(b *bytes.Buffer, p *Program, memo *listingMemo) {
	iter := p.Insns.Iterate()
	var num []byte
	for iter.Next() {
		ins := *iter.Ins
		if sym := ins.Symbol(); sym != "" {
			b.WriteString(displaySymbol(sym))
			b.WriteString(":\n")
		}
		// "%6d: %s", without fmt.
		num = strconv.AppendInt(num[:0], int64(iter.Offset), 10)
		text := memo.insn(ins)
		start := b.Len()
		for range 6 - len(num) {
			b.WriteByte(' ')
		}
		b.Write(num)
		b.WriteString(": ")
		b.WriteString(text)
		pos := ""
		if src := ins.Source(); src != nil {
			pos = memo.pos(src)
		}
		if pos != "" && pos != "-" {
			pad := max(listingComment-(b.Len()-start), 1)
			for range pad {
				b.WriteByte(' ')
			}
			b.WriteString("; ")
			b.WriteString(pos)
		}
		b.WriteByte('\n')
	}
}

// writeWithPos writes text and, when pos is known, pos in the comment column.
func writeWithPos(b *bytes.Buffer, text, pos string) {
	b.WriteString(text)
	if pos != "" && pos != "-" {
		pad := max(listingComment-len(text), 1)
		b.WriteString(strings.Repeat(" ", pad))
		b.WriteString("; ")
		b.WriteString(pos)
	}
	b.WriteByte('\n')
}

// reg names a register as the kernel's and LLVM's listings do (r10, not
// cilium/ebpf's rfp).
func reg(r asm.Register) string { return fmt.Sprintf("r%d", uint8(r)) }

// displaySymbol turns a block symbol back into the IR label.
func displaySymbol(sym string) string {
	return strings.TrimPrefix(sym, blockSymbolPrefix)
}

var aluSyntax = map[asm.ALUOp]string{
	asm.Add:  "+=",
	asm.Sub:  "-=",
	asm.Mul:  "*=",
	asm.Div:  "/=",
	asm.Or:   "|=",
	asm.And:  "&=",
	asm.LSh:  "<<=",
	asm.RSh:  ">>=",
	asm.Mod:  "%=",
	asm.Xor:  "^=",
	asm.ArSh: "s>>=",
}

var jumpSyntax = map[asm.JumpOp]string{
	asm.JEq:  "==",
	asm.JNE:  "!=",
	asm.JGT:  ">",
	asm.JGE:  ">=",
	asm.JLT:  "<",
	asm.JLE:  "<=",
	asm.JSGT: "s>",
	asm.JSGE: "s>=",
	asm.JSLT: "s<",
	asm.JSLE: "s<=",
	asm.JSet: "&",
}

var sizeSyntax = map[asm.Size]string{asm.Byte: "u8", asm.Half: "u16", asm.Word: "u32", asm.DWord: "u64"}

// formatInsn renders one instruction in C-like syntax.
func formatInsn(ins asm.Instruction) string {
	op := ins.OpCode
	if ins.IsLoadFromMap() {
		return fmt.Sprintf("%s = map[%s] ll", reg(ins.Dst), mapName(ins))
	}
	switch cls := op.Class(); {
	case cls == asm.ALU64Class || cls == asm.ALUClass:
		alureg := func(r asm.Register) string {
			if cls == asm.ALUClass {
				return fmt.Sprintf("w%d", uint8(r))
			}
			return reg(r)
		}
		src := func(bitwise bool) string {
			if op.Source() == asm.ImmSource {
				return formatImm(ins.Constant, bitwise)
			}
			return alureg(ins.Src)
		}
		switch alu := op.ALUOp(); alu {
		case asm.Mov:
			return fmt.Sprintf("%s = %s", alureg(ins.Dst), src(false))
		case asm.Neg:
			return fmt.Sprintf("%s = -%s", alureg(ins.Dst), alureg(ins.Dst))
		case asm.Swap:
			name := "bswap"
			if cls == asm.ALUClass {
				name = "le"
				if op.Endianness() == asm.BE {
					name = "be"
				}
			}
			return fmt.Sprintf("%s = %s%d %s", reg(ins.Dst), name, ins.Constant, reg(ins.Dst))
		default:
			sym, ok := aluSyntax[alu]
			if !ok {
				break
			}
			bitwise := alu == asm.And || alu == asm.Or || alu == asm.Xor
			return fmt.Sprintf("%s %s %s", alureg(ins.Dst), sym, src(bitwise))
		}

	case cls == asm.LdXClass:
		return fmt.Sprintf("%s = *(%s *)%s", reg(ins.Dst), sizeSyntax[op.Size()], memOperand(ins.Src, ins.Offset))

	case cls == asm.LdClass && op.IsDWordLoad():
		return fmt.Sprintf("%s = %s ll", reg(ins.Dst), formatImm(ins.Constant, true))

	case cls == asm.StClass:
		return fmt.Sprintf("*(%s *)%s = %s", sizeSyntax[op.Size()], memOperand(ins.Dst, ins.Offset), formatImm(ins.Constant, false))

	case cls == asm.StXClass:
		mem := fmt.Sprintf("*(%s *)%s", sizeSyntax[op.Size()], memOperand(ins.Dst, ins.Offset))
		if op.Mode() == asm.AtomicMode {
			if op.AtomicOp() == asm.AddAtomic {
				return fmt.Sprintf("lock %s += %s", mem, reg(ins.Src))
			}
			break
		}
		return fmt.Sprintf("%s = %s", mem, reg(ins.Src))

	case cls.IsJump():
		target := displaySymbol(ins.Reference())
		if target == "" {
			target = fmt.Sprintf("%+d", ins.Offset)
		}
		switch jop := op.JumpOp(); jop {
		case asm.Exit:
			return "exit"
		case asm.Call:
			fn := asm.BuiltinFunc(ins.Constant)
			return fmt.Sprintf("call %s#%d", helperName(fn), ins.Constant)
		case asm.Ja:
			return "goto " + target
		default:
			sym, ok := jumpSyntax[jop]
			if !ok {
				break
			}
			rhs := reg(ins.Src)
			if op.Source() == asm.ImmSource {
				rhs = formatImm(ins.Constant, jop == asm.JSet)
			}
			return fmt.Sprintf("if %s %s %s goto %s", reg(ins.Dst), sym, rhs, target)
		}
	}
	// Anything ebpfc does not emit falls back to cilium/ebpf's own syntax.
	return fmt.Sprint(ins)
}

// mapName is the map a map-pointer load references.
func mapName(ins asm.Instruction) string {
	if ref := ins.Reference(); ref != "" {
		return ref
	}
	return fmt.Sprintf("fd:%d", ins.Constant)
}

// memOperand renders (r7 + 12) and (r10 - 8).
func memOperand(r asm.Register, off int16) string {
	if off < 0 {
		return fmt.Sprintf("(%s - %d)", reg(r), -int(off))
	}
	return fmt.Sprintf("(%s + %d)", reg(r), off)
}

// formatImm prints immediates in decimal, except masks and wide constants,
// which read better in hex.
func formatImm(c int64, hex bool) string {
	if hex && (c < 0 || c > 9) {
		return fmt.Sprintf("%#x", uint64(c))
	}
	return fmt.Sprint(c)
}

// helperName turns FnMapLookupElem into bpf_map_lookup_elem, the name the
// kernel's headers and bpftool use.
func helperName(fn asm.BuiltinFunc) string {
	s := strings.TrimPrefix(fn.String(), "Fn")
	var b strings.Builder
	b.WriteString("bpf_")
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
