package backend

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpfc/ebpfc/source"
)

// lineAt is the CUE position of the instruction at raw offset raw (in
// 8-byte units) of a program.
type lineAt struct {
	raw uint32
	pos source.Pos
}

// sourcePos extracts the CUE position an instruction carries. Codegen sets
// a source.Pos; anything else (a comment, a btf.Line) carries none.
func sourcePos(s fmt.Stringer) (source.Pos, bool) {
	switch p := s.(type) {
	case source.Pos:
		return p, p.IsValid()
	case *source.Pos:
		if p != nil {
			return *p, p.IsValid()
		}
	}
	return source.Pos{}, false
}

// Limits of bpf_line_info.line_col: the line in the top 22 bits, the
// column in the low 10.
const (
	lineColBits = 10
	maxLine     = 1<<(32-lineColBits) - 1
	maxCol      = 1<<lineColBits - 1
)

// buildBTFExt returns the .BTF blob raw with the strings .BTF.ext needs
// appended to its string table, and the .BTF.ext blob: a func_info record
// at the start of every program, pointing at its FUNC, and line_info
// records wherever the CUE position changes, so that `bpftool prog dump`
// and verifier logs show the CUE line behind each instruction.
//
// Every program gets a line_info record at its first instruction (with the
// program's own position when the instruction has none): libbpf refuses
// an object where a program has func_info but no line_info, and the kernel
// requires one at the start of every function.
func buildBTFExt(raw []byte, sections []*progSection, funcIDs map[string]btf.TypeID) (btfRaw, ext []byte, err error) {
	// The .BTF layout cilium/ebpf's Builder writes: a 24-byte header, the
	// types, then the strings, which run to the end of the blob.
	const btfHeaderLen = 24
	if len(raw) < btfHeaderLen {
		return nil, nil, fmt.Errorf("BTF blob too short")
	}
	le := binary.LittleEndian
	hdrLen := le.Uint32(raw[4:])
	strOff, strLen := le.Uint32(raw[16:]), le.Uint32(raw[20:])
	if int(hdrLen+strOff+strLen) != len(raw) {
		return nil, nil, fmt.Errorf("BTF string table does not end the blob")
	}
	// The strings are added after the existing ones; BTF allows
	// duplicates, so there is no need to look inside the old table.
	strs := newStringTable()
	strs.data = nil
	strs.offs = make(map[string]uint32)
	str := func(s string) uint32 {
		if s == "" {
			return 0 // the table starts with the empty string
		}
		return strLen + strs.add(s)
	}

	const (
		funcInfoSize = 8
		lineInfoSize = 16
	)
	var funcInfo, lineInfo bytes.Buffer
	le32 := func(b *bytes.Buffer, vs ...uint32) {
		for _, v := range vs {
			b.Write(le.AppendUint32(nil, v))
		}
	}
	le32(&funcInfo, funcInfoSize)
	le32(&lineInfo, lineInfoSize)
	for _, sec := range sections {
		name := str(sec.name)
		le32(&funcInfo, name, uint32(len(sec.progs)))
		for _, p := range sec.progs {
			le32(&funcInfo, uint32(p.off), uint32(funcIDs[p.prog.Name]))
		}

		var records [][4]uint32
		for _, p := range sec.progs {
			first, ok := p.prog.Pos, p.prog.Pos.IsValid()
			if len(p.lines) > 0 && p.lines[0].raw == 0 {
				first, ok = p.lines[0].pos, true
			}
			prev := source.Pos{}
			emit := func(raw uint32, pos source.Pos) {
				records = append(records, [4]uint32{
					uint32(p.off) + raw*8,
					str(pos.File),
					str(pos.String()),
					uint32(min(pos.Line, maxLine))<<lineColBits | uint32(min(max(pos.Col, 0), maxCol)),
				})
				prev = pos
			}
			if ok {
				emit(0, first)
			} else {
				records = append(records, [4]uint32{uint32(p.off), 0, 0, 0})
			}
			for _, l := range p.lines {
				if l.raw != 0 && l.pos != prev {
					emit(l.raw, l.pos)
				}
			}
		}
		le32(&lineInfo, name, uint32(len(records)))
		for _, r := range records {
			le32(&lineInfo, r[:]...)
		}
	}

	// The extended header, with the (empty) CO-RE relocation fields clang
	// also writes.
	const extHeaderLen = 32
	var out bytes.Buffer
	out.Write(le.AppendUint16(nil, 0xeb9f))
	out.WriteByte(1) // version
	out.WriteByte(0) // flags
	le32(&out,
		extHeaderLen,
		0, uint32(funcInfo.Len()),
		uint32(funcInfo.Len()), uint32(lineInfo.Len()),
		uint32(funcInfo.Len()+lineInfo.Len()), 0,
	)
	out.Write(funcInfo.Bytes())
	out.Write(lineInfo.Bytes())

	btfRaw = append(raw, strs.data...)
	le.PutUint32(btfRaw[20:], strLen+uint32(len(strs.data)))
	return btfRaw, out.Bytes(), nil
}
