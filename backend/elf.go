package backend

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpfc/ebpfc/ir"
)

// Relocation types of the BPF ELF ABI (debug/elf does not name them all).
const (
	// rBPF64_64 patches the 64-bit immediate of an ld_imm64; loaders turn
	// it into a map fd load.
	rBPF64_64 = 1
	// rBPF64Abs64 is a plain 64-bit address in data: a program pointer in
	// a program array's values.
	rBPF64Abs64 = 2
)

// sectionProgTypes lists the program sections ebpfc emits and the program
// type cilium/ebpf, libbpf and iproute2 all infer from each name. A loader
// never sees Program.Type, so WriteELF refuses a section that would make
// it load the program as something else.
var sectionProgTypes = map[string]ebpf.ProgramType{
	"tc":                  ebpf.SchedCLS,
	"classifier":          ebpf.SchedCLS,
	"xdp":                 ebpf.XDP,
	"cgroup/bind4":        ebpf.CGroupSockAddr,
	"cgroup/bind6":        ebpf.CGroupSockAddr,
	"cgroup/connect4":     ebpf.CGroupSockAddr,
	"cgroup/connect6":     ebpf.CGroupSockAddr,
	"cgroup/sendmsg4":     ebpf.CGroupSockAddr,
	"cgroup/sendmsg6":     ebpf.CGroupSockAddr,
	"cgroup/recvmsg4":     ebpf.CGroupSockAddr,
	"cgroup/recvmsg6":     ebpf.CGroupSockAddr,
	"cgroup/getpeername4": ebpf.CGroupSockAddr,
	"cgroup/getpeername6": ebpf.CGroupSockAddr,
	"cgroup/getsockname4": ebpf.CGroupSockAddr,
	"cgroup/getsockname6": ebpf.CGroupSockAddr,
}

// WriteELF encodes o as a relocatable little-endian ELF64 object for
// EM_BPF, in the shape clang gives libbpf-style C, so that cilium/ebpf's
// LoadCollectionSpec, libbpf (bpftool prog loadall) and iproute2 all load it:
//
//   - each program's instructions in its section (several programs may
//     share one), with a global FUNC symbol at its offset and size, and a
//     .rel<section> R_BPF_64_64 relocation for every map-pointer load;
//   - the maps as BTF-defined maps in .maps, one global OBJECT symbol each,
//     with program arrays initialised from ir.Map.Slots through R_BPF_64_ABS64
//     relocations in .rel.maps;
//   - .BTF with the map definitions, their key and value structs, the .maps
//     DATASEC and a FUNC per program, and .BTF.ext with func_info and a
//     line_info for every change of CUE position, so loaders show the CUE
//     line of each instruction;
//   - the license, a symbol table and one string table.
//
// The bytes depend only on o: maps are written sorted by name (whatever
// their order in o), programs in o's order.
//
// iproute2 (ip link ... xdp obj, tc ... bpf obj) loads only the program it
// attaches, and libbpf then fails to fill a program-array slot naming any
// other program of the object. Objects meant for iproute2 must leave such
// slots empty for the runtime to fill.
func WriteELF(o *Object) ([]byte, error) {
	w, err := newObjectWriter(o)
	if err != nil {
		return nil, err
	}
	if err := w.writePrograms(); err != nil {
		return nil, err
	}
	if err := w.writeMaps(); err != nil {
		return nil, err
	}
	if err := w.writeBTF(); err != nil {
		return nil, err
	}
	return w.encode()
}

// objectWriter collects the sections, symbols and relocations of one object
// before encode lays them out.
type objectWriter struct {
	obj  *Object
	maps []*ir.Map // sorted by name

	types *btfTypes

	// progSections are the program sections in order of first use.
	progSections []*progSection
	// progSyms and mapSyms give each program's and map's symbol index.
	progSyms map[string]uint32
	progs    map[string]*placedProgram
	mapSyms  map[string]uint32

	mapsData []byte
	mapsRels []elfRel
	mapVars  []btf.VarSecinfo

	btf    []byte
	btfExt []byte
}

// progSection is one ELF section of instructions.
type progSection struct {
	name  string
	index uint16 // ELF section index
	code  []byte
	rels  []elfRel
	progs []*placedProgram
}

// placedProgram is a program at its place in a section.
type placedProgram struct {
	prog    *Program
	section *progSection
	off     uint64 // byte offset in the section
	size    uint64
	// lines are the program's source positions by raw instruction offset,
	// for .BTF.ext.
	lines []lineAt
}

// elfRel is one relocation: at off, against symbol sym.
type elfRel struct {
	off uint64
	sym uint32
	typ uint32
}

func newObjectWriter(o *Object) (*objectWriter, error) {
	if o.License == "" {
		return nil, errors.New("object has no license")
	}
	// An object without programs is valid: a node with nothing to enforce
	// still gets its node-wide maps, so the runtime's view stays uniform.
	w := &objectWriter{
		obj:      o,
		maps:     slices.Clone(o.Maps),
		types:    newBTFTypes(),
		progSyms: make(map[string]uint32),
		progs:    make(map[string]*placedProgram),
		mapSyms:  make(map[string]uint32),
	}
	slices.SortStableFunc(w.maps, func(a, b *ir.Map) int { return cmp.Compare(a.Name, b.Name) })

	// Symbol 0 is the null symbol; programs come first, then maps, all
	// global, so the table has no locals to order.
	names := make(map[string]string)
	claim := func(kind, name string) error {
		if !isCIdent(name) {
			return fmt.Errorf("%s name %q is not a C identifier, which BTF requires", kind, name)
		}
		if prev, ok := names[name]; ok {
			return fmt.Errorf("%s %s has the same name as a %s; loaders find both by symbol name", kind, name, prev)
		}
		names[name] = kind
		return nil
	}
	for i, p := range o.Programs {
		if err := claim("program", p.Name); err != nil {
			return nil, err
		}
		want, ok := sectionProgTypes[p.Section]
		if !ok {
			return nil, fmt.Errorf("program %s: section %q names no program type ebpfc emits", p.Name, p.Section)
		}
		if p.Type != want {
			return nil, fmt.Errorf("program %s has type %s but loaders infer %s from section %q", p.Name, p.Type, want, p.Section)
		}
		if len(p.Insns) == 0 {
			return nil, fmt.Errorf("program %s has no instructions", p.Name)
		}
		w.progSyms[p.Name] = uint32(1 + i)
	}
	for i, m := range w.maps {
		if err := claim("map", m.Name); err != nil {
			return nil, err
		}
		if _, ok := mapTypes[m.Type]; !ok {
			return nil, fmt.Errorf("map %s has unknown type %d", m.Name, m.Type)
		}
		if m.Type != ir.MapProgArray && m.Type != ir.MapRingBuf {
			for _, s := range []ir.Struct{m.Key, m.Value} {
				if err := checkStruct(s); err != nil {
					return nil, fmt.Errorf("map %s: %w", m.Name, err)
				}
			}
			if isArrayMap(m.Type) && (len(m.Key.Fields) != 1 || m.Key.Fields[0].Size != 4) {
				return nil, fmt.Errorf("map %s: an array's key must be a single 4-byte field, not %v", m.Name, m.Key.Fields)
			}
		}
		w.mapSyms[m.Name] = uint32(1 + len(o.Programs) + i)
	}
	return w, nil
}

// checkStruct reports names BTF cannot carry and field sizes the layout
// does not define.
func checkStruct(s ir.Struct) error {
	if s.Name != "" && !isCIdent(s.Name) {
		return fmt.Errorf("struct name %q is not a C identifier", s.Name)
	}
	if len(s.Fields) == 0 {
		return fmt.Errorf("struct %s has no fields", s.Name)
	}
	for _, f := range s.Fields {
		if !isCIdent(f.Name) {
			return fmt.Errorf("struct %s: field name %q is not a C identifier", s.Name, f.Name)
		}
		switch f.Size {
		case 1, 2, 4, 8:
		default:
			return fmt.Errorf("struct %s: field %s has size %d, want 1, 2, 4 or 8", s.Name, f.Name, f.Size)
		}
	}
	return nil
}

// isCIdent reports whether s is a C identifier, which the kernel requires
// of BTF function, variable, struct and member names.
func isCIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// writePrograms encodes each program into its section and records a
// relocation for every map-pointer load.
func (w *objectWriter) writePrograms() error {
	bySection := make(map[string]*progSection)
	for _, p := range w.obj.Programs {
		sec := bySection[p.Section]
		if sec == nil {
			sec = &progSection{name: p.Section}
			bySection[p.Section] = sec
			w.progSections = append(w.progSections, sec)
		}
		placed, err := w.placeProgram(sec, p)
		if err != nil {
			return fmt.Errorf("program %s: %w", p.Name, err)
		}
		sec.progs = append(sec.progs, placed)
		w.progs[p.Name] = placed
	}
	return nil
}

func (w *objectWriter) placeProgram(sec *progSection, p *Program) (*placedProgram, error) {
	placed := &placedProgram{prog: p, section: sec, off: uint64(len(sec.code))}

	// Marshal resolves symbolic jumps in place; work on a copy so the
	// caller's program is not changed behind its back.
	insns := slices.Clone(p.Insns)
	iter := insns.Iterate()
	for iter.Next() {
		ins := iter.Ins
		if pos, ok := sourcePos(ins.Source()); ok {
			placed.lines = append(placed.lines, lineAt{raw: uint32(iter.Offset), pos: pos})
		}
		if ins.IsFunctionCall() {
			// A BPF-to-BPF call needs a symbol and a func_info per
			// subprogram; ebpfc inlines or tail-calls instead.
			return nil, fmt.Errorf("instruction %d: BPF-to-BPF calls are not supported", iter.Index)
		}
		if ins.OpCode != asm.LoadImmOp(asm.DWord) || ins.Reference() == "" {
			continue
		}
		name := ins.Reference()
		sym, ok := w.mapSyms[name]
		if !ok {
			return nil, fmt.Errorf("instruction %d loads map %q, which the object does not define", iter.Index, name)
		}
		if ins.Src != asm.PseudoMapFD {
			return nil, fmt.Errorf("instruction %d references map %q but is not a map pointer load (src %s)", iter.Index, name, ins.Src)
		}
		// Like clang, leave the immediate and source register zero: the
		// relocation is what tells a loader which map goes here.
		ins.Src = asm.R0
		ins.Constant = 0
		sec.rels = append(sec.rels, elfRel{
			off: placed.off + iter.Offset.Bytes(),
			sym: sym,
			typ: rBPF64_64,
		})
	}
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, err
	}
	placed.size = uint64(buf.Len())
	sec.code = append(sec.code, buf.Bytes()...)
	return placed, nil
}

// writeMaps lays out the .maps section: each map's definition is zero
// bytes the size of its BTF struct, plus one 8-byte slot per program-array
// index that R_BPF_64_ABS64 relocations point at the slot's program.
func (w *objectWriter) writeMaps() error {
	for _, m := range w.maps {
		def := w.types.mapDef(m)
		off := uint64(len(w.mapsData))
		size := uint64(def.Size)
		if m.Type == ir.MapProgArray {
			if uint64(len(m.Slots)) > uint64(m.MaxEntries) {
				return fmt.Errorf("map %s: %d slots but max_entries %d", m.Name, len(m.Slots), m.MaxEntries)
			}
			for i, prog := range m.Slots {
				if prog == "" {
					continue
				}
				if _, ok := w.progs[prog]; !ok {
					return fmt.Errorf("map %s: slot %d names program %q, which the object does not define", m.Name, i, prog)
				}
				w.mapsRels = append(w.mapsRels, elfRel{
					off: size + off + uint64(i)*8,
					sym: w.progSyms[prog],
					typ: rBPF64Abs64,
				})
			}
			size += uint64(len(m.Slots)) * 8
		}
		w.mapsData = append(w.mapsData, make([]byte, size)...)
		// The VAR's size covers the slots too: libbpf finds the map a
		// .rel.maps entry belongs to by the VARs' offset and size.
		w.mapVars = append(w.mapVars, btf.VarSecinfo{
			Type:   &btf.Var{Name: m.Name, Type: def, Linkage: btf.GlobalVar},
			Offset: uint32(off),
			Size:   uint32(size),
		})
	}
	return w.types.conflict
}

// writeBTF builds .BTF and .BTF.ext.
func (w *objectWriter) writeBTF() error {
	var roots []btf.Type
	funcs := make([]*btf.Func, len(w.obj.Programs))
	for i, p := range w.obj.Programs {
		funcs[i] = w.types.progFunc(p.Name)
		roots = append(roots, funcs[i])
	}
	if len(w.maps) > 0 {
		roots = append(roots, &btf.Datasec{Name: ".maps", Size: uint32(len(w.mapsData)), Vars: w.mapVars})
	}
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		return err
	}
	funcIDs := make(map[string]btf.TypeID)
	for i, t := range roots {
		id, err := b.Add(t)
		if err != nil {
			return fmt.Errorf("BTF: %w", err)
		}
		if i < len(funcs) {
			funcIDs[funcs[i].Name] = id
		}
	}
	raw, err := b.Marshal(nil, &btf.MarshalOptions{Order: binary.LittleEndian})
	if err != nil {
		return fmt.Errorf("BTF: %w", err)
	}
	if len(w.obj.Programs) == 0 {
		// libbpf rejects a .BTF.ext without records.
		w.btf = raw
		return nil
	}
	w.btf, w.btfExt, err = buildBTFExt(raw, w.progSections, funcIDs)
	return err
}

// Section indices that do not depend on the object.
const (
	nullSection   = 0
	strtabSection = 1
)

// encode lays out the ELF file: header, section contents, then the section
// header table.
func (w *objectWriter) encode() ([]byte, error) {
	strtab := newStringTable()

	type section struct {
		name    string
		typ     elf.SectionType
		flags   elf.SectionFlag
		data    []byte
		link    uint32
		info    uint32
		align   uint64
		entsize uint64
	}
	sections := []*section{
		{}, // the null section
		{name: ".strtab", typ: elf.SHT_STRTAB, align: 1},
	}
	add := func(s *section) uint16 {
		sections = append(sections, s)
		return uint16(len(sections) - 1)
	}

	for _, ps := range w.progSections {
		ps.index = add(&section{
			name:  ps.name,
			typ:   elf.SHT_PROGBITS,
			flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR,
			data:  ps.code,
			align: 8,
		})
	}
	add(&section{
		name:  "license",
		typ:   elf.SHT_PROGBITS,
		flags: elf.SHF_ALLOC | elf.SHF_WRITE,
		data:  append([]byte(w.obj.License), 0),
		align: 1,
	})
	var mapsIndex uint16
	if len(w.maps) > 0 {
		// Align 8: cilium/ebpf takes the width of a values slot from it.
		mapsIndex = add(&section{
			name:  ".maps",
			typ:   elf.SHT_PROGBITS,
			flags: elf.SHF_ALLOC | elf.SHF_WRITE,
			data:  w.mapsData,
			align: 8,
		})
	}
	add(&section{name: ".BTF", typ: elf.SHT_PROGBITS, data: w.btf, align: 4})
	if w.btfExt != nil {
		add(&section{name: ".BTF.ext", typ: elf.SHT_PROGBITS, data: w.btfExt, align: 4})
	}
	// The symbol table's index is needed by the relocation sections before
	// it exists: it goes last.
	symtabIndex := uint32(len(sections))
	for _, ps := range w.progSections {
		if len(ps.rels) > 0 {
			symtabIndex++
		}
	}
	if len(w.mapsRels) > 0 {
		symtabIndex++
	}
	relSection := func(name string, target uint16, rels []elfRel) {
		if len(rels) == 0 {
			return
		}
		var data bytes.Buffer
		for _, r := range rels {
			binary.Write(&data, binary.LittleEndian, elf.Rel64{Off: r.off, Info: elf.R_INFO(r.sym, r.typ)})
		}
		add(&section{
			name:    ".rel" + name,
			typ:     elf.SHT_REL,
			flags:   elf.SHF_INFO_LINK,
			data:    data.Bytes(),
			link:    symtabIndex,
			info:    uint32(target),
			align:   8,
			entsize: 16,
		})
	}
	for _, ps := range w.progSections {
		relSection(ps.name, ps.index, ps.rels)
	}
	if len(w.mapsRels) > 0 {
		relSection(".maps", mapsIndex, w.mapsRels)
	}

	var syms bytes.Buffer
	binary.Write(&syms, binary.LittleEndian, elf.Sym64{})
	for _, p := range w.obj.Programs {
		placed := w.progs[p.Name]
		binary.Write(&syms, binary.LittleEndian, elf.Sym64{
			Name:  strtab.add(p.Name),
			Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC),
			Shndx: placed.section.index,
			Value: placed.off,
			Size:  placed.size,
		})
	}
	for _, v := range w.mapVars {
		binary.Write(&syms, binary.LittleEndian, elf.Sym64{
			Name:  strtab.add(v.Type.TypeName()),
			Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT),
			Shndx: mapsIndex,
			Value: uint64(v.Offset),
			Size:  uint64(v.Size),
		})
	}
	if got := add(&section{
		name:    ".symtab",
		typ:     elf.SHT_SYMTAB,
		data:    syms.Bytes(),
		link:    strtabSection,
		info:    1, // the index of the first global symbol
		align:   8,
		entsize: uint64(binary.Size(elf.Sym64{})),
	}); uint32(got) != symtabIndex {
		return nil, fmt.Errorf("internal error: symbol table at section %d, expected %d", got, symtabIndex)
	}

	// Section names go into the one string table last, after the symbol
	// names, which is as good an order as any as long as it is fixed.
	nameOffs := make([]uint32, len(sections))
	for i, s := range sections[1:] {
		nameOffs[i+1] = strtab.add(s.name)
	}
	sections[strtabSection].data = strtab.bytes()

	const ehsize = 64
	const shentsize = 64
	out := make([]byte, ehsize)
	offs := make([]uint64, len(sections))
	for i, s := range sections {
		if i == nullSection {
			continue
		}
		for uint64(len(out))%s.align != 0 {
			out = append(out, 0)
		}
		offs[i] = uint64(len(out))
		out = append(out, s.data...)
	}
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	shoff := uint64(len(out))

	var hdr bytes.Buffer
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE)}
	binary.Write(&hdr, binary.LittleEndian, elf.Header64{
		Ident:     ident,
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_BPF),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     shoff,
		Ehsize:    ehsize,
		Shentsize: shentsize,
		Shnum:     uint16(len(sections)),
		Shstrndx:  strtabSection,
	})
	copy(out, hdr.Bytes())

	var shdrs bytes.Buffer
	for i, s := range sections {
		if i == nullSection {
			binary.Write(&shdrs, binary.LittleEndian, elf.Section64{})
			continue
		}
		binary.Write(&shdrs, binary.LittleEndian, elf.Section64{
			Name:      nameOffs[i],
			Type:      uint32(s.typ),
			Flags:     uint64(s.flags),
			Off:       offs[i],
			Size:      uint64(len(s.data)),
			Link:      s.link,
			Info:      s.info,
			Addralign: s.align,
			Entsize:   s.entsize,
		})
	}
	return append(out, shdrs.Bytes()...), nil
}

// stringTable is an ELF string table: NUL-terminated strings after a
// leading NUL, each stored once.
type stringTable struct {
	data []byte
	offs map[string]uint32
}

func newStringTable() *stringTable {
	return &stringTable{data: []byte{0}, offs: map[string]uint32{"": 0}}
}

func (t *stringTable) add(s string) uint32 {
	if off, ok := t.offs[s]; ok {
		return off
	}
	off := uint32(len(t.data))
	t.data = append(append(t.data, s...), 0)
	t.offs[s] = off
	return off
}

func (t *stringTable) bytes() []byte { return t.data }
