package backend

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpfc/ebpfc/ir"
)

// noPrealloc is BPF_F_NO_PREALLOC. The kernel refuses an LPM trie without
// it, since tries allocate their nodes on insert.
const noPrealloc = 1

// progArraySlotSize is the key and value size of a program array: a u32
// index and a u32 program fd.
const progArraySlotSize = 4

// mapTypes maps the IR's map kinds to the kernel's.
var mapTypes = map[ir.MapType]ebpf.MapType{
	ir.MapHash:        ebpf.Hash,
	ir.MapLRUHash:     ebpf.LRUHash,
	ir.MapArray:       ebpf.Array,
	ir.MapPerCPUArray: ebpf.PerCPUArray,
	ir.MapPerCPUHash:  ebpf.PerCPUHash,
	ir.MapLPMTrie:     ebpf.LPMTrie,
	ir.MapProgArray:   ebpf.ProgramArray,
	ir.MapRingBuf:     ebpf.RingBuf,
}

// MapSpec returns the cilium/ebpf description of m: the spec the runtime
// creates the map from, and the one LoadCollectionSpec reads back from the
// object WriteELF produces for it.
//
// Keys and values carry BTF struct types, so bpftool and the kernel show
// their fields, except that an array's key is a u32 typedef named after the
// key struct, the only key type the kernel accepts for arrays. Two kinds of
// map are different: a ring buffer has neither
// key nor value, and a program array has u32 keys and values without BTF
// types (the kernel refuses BTF on program arrays); its Contents name the
// program in each non-empty slot, which NewCollection resolves to fds. An
// LPM trie always has BPF_F_NO_PREALLOC set. A map type the IR does not
// define gives ebpf.UnspecifiedMap.
func MapSpec(m *ir.Map) *ebpf.MapSpec {
	return newBTFTypes().mapSpec(m)
}

// mapSpec is MapSpec with BTF types shared through b.
func (b *btfTypes) mapSpec(m *ir.Map) *ebpf.MapSpec {
	spec := &ebpf.MapSpec{
		Name:       m.Name,
		Type:       mapTypes[m.Type],
		MaxEntries: m.MaxEntries,
		Flags:      mapFlags(m),
	}
	switch m.Type {
	case ir.MapRingBuf:
	case ir.MapProgArray:
		spec.KeySize = progArraySlotSize
		spec.ValueSize = progArraySlotSize
		for i, prog := range m.Slots {
			if prog != "" {
				spec.Contents = append(spec.Contents, ebpf.MapKV{Key: uint32(i), Value: prog})
			}
		}
	default:
		spec.Key = b.keyType(m)
		spec.KeySize = uint32(m.Key.Size())
		spec.Value = b.structType(m.Value)
		spec.ValueSize = uint32(m.Value.Size())
	}
	return spec
}

// mapFlags returns the flags m is created with.
func mapFlags(m *ir.Map) uint32 {
	if m.Type == ir.MapLPMTrie {
		return m.Flags | noPrealloc
	}
	return m.Flags
}

// btfTypes builds the BTF of one object. It hands out one type per struct
// name and per integer width, so a key struct several maps share is
// described once, and the object's BTF depends only on the maps and
// programs, not on how often a type was asked for.
type btfTypes struct {
	uints    map[int]*btf.Int
	structs  map[string]*btf.Struct
	layouts  map[string]ir.Struct
	typedefs map[string]*btf.Typedef
	// conflict is the first struct name used with two different layouts.
	// BTF would allow it, but it is a bug upstream, and a reader of the
	// object could not tell the two apart.
	conflict error

	cInt      *btf.Int
	arraySize *btf.Int
	uintPtrs  map[uint32]*btf.Pointer
	progProto *btf.FuncProto
}

func newBTFTypes() *btfTypes {
	cInt := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	return &btfTypes{
		uints:    make(map[int]*btf.Int),
		structs:  make(map[string]*btf.Struct),
		layouts:  make(map[string]ir.Struct),
		typedefs: make(map[string]*btf.Typedef),
		cInt:     cInt,
		// clang indexes every array with this type; loaders do not care,
		// but matching it keeps bpftool's BTF dumps familiar.
		arraySize: &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4},
		uintPtrs:  make(map[uint32]*btf.Pointer),
		// Every program is "int prog(void *ctx)". The kernel wants the
		// parameter named when the prototype backs a FUNC.
		progProto: &btf.FuncProto{
			Return: cInt,
			Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: &btf.Void{}}}},
		},
	}
}

// cUnsignedNames are the names clang gives unsigned integers, so bpftool
// prints map keys the way a C programmer would read them.
var cUnsignedNames = map[int]string{
	1: "unsigned char",
	2: "unsigned short",
	4: "unsigned int",
	8: "unsigned long long",
}

// uint returns the unsigned integer type of size bytes.
func (b *btfTypes) uint(size int) *btf.Int {
	if t, ok := b.uints[size]; ok {
		return t
	}
	name, ok := cUnsignedNames[size]
	if !ok {
		name = fmt.Sprintf("__u%d", size*8)
	}
	t := &btf.Int{Name: name, Size: uint32(size)}
	b.uints[size] = t
	return t
}

// structType returns the BTF struct for s: one unsigned integer member per
// field at the offsets ir.Struct.Offsets gives, so the BTF size is exactly
// the key or value size the programs use.
func (b *btfTypes) structType(s ir.Struct) *btf.Struct {
	if s.Name != "" {
		if t, ok := b.structs[s.Name]; ok {
			if prev := b.layouts[s.Name]; !slices.Equal(prev.Fields, s.Fields) && b.conflict == nil {
				b.conflict = fmt.Errorf("struct %s is used with two different layouts: %v and %v", s.Name, prev.Fields, s.Fields)
			}
			return t
		}
	}
	offs, size := s.Offsets()
	t := &btf.Struct{Name: s.Name, Size: uint32(size)}
	for i, f := range s.Fields {
		t.Members = append(t.Members, btf.Member{
			Name:   f.Name,
			Type:   b.uint(f.Size),
			Offset: btf.Bits(offs[i] * 8),
		})
	}
	if s.Name != "" {
		b.structs[s.Name] = t
		b.layouts[s.Name] = s
	}
	return t
}

// keyType returns the BTF type of m's key: its struct, except for arrays,
// whose key the kernel insists be a 32-bit integer (array_map_check_btf).
// There a typedef keeps the struct's name; the one field's name is lost.
func (b *btfTypes) keyType(m *ir.Map) btf.Type {
	if !isArrayMap(m.Type) {
		return b.structType(m.Key)
	}
	if m.Key.Name == "" {
		return b.uint(4)
	}
	if t, ok := b.typedefs[m.Key.Name]; ok {
		return t
	}
	t := &btf.Typedef{Name: m.Key.Name, Type: b.uint(4)}
	b.typedefs[m.Key.Name] = t
	return t
}

// isArrayMap reports whether maps of type t are indexed by a u32.
func isArrayMap(t ir.MapType) bool { return t == ir.MapArray || t == ir.MapPerCPUArray }

// uintMember returns the type libbpf's __uint(name, n) macro declares,
// int (*name)[n]: the value lives in the array's element count, so the map
// definition needs no initialised data.
func (b *btfTypes) uintMember(n uint32) *btf.Pointer {
	if p, ok := b.uintPtrs[n]; ok {
		return p
	}
	p := &btf.Pointer{Target: &btf.Array{Index: b.arraySize, Type: b.cInt, Nelems: n}}
	b.uintPtrs[n] = p
	return p
}

// mapDef returns the BTF struct of m's definition in the .maps section, laid
// out as libbpf's bpf_helpers.h macros would for
//
//	struct {
//		__uint(type, ...);
//		__type(key, K);   __type(value, V);           // most maps
//		__uint(key_size, 4); __uint(value_size, 4);   // program arrays
//		__uint(max_entries, ...);
//		__uint(map_flags, ...);                       // when not zero
//		__array(values, int (void *));                // program arrays
//	} name SEC(".maps");
//
// Every member is a pointer, so member i sits at byte 8*i; values is a
// zero-length array whose elements the object's data and relocations
// provide.
func (b *btfTypes) mapDef(m *ir.Map) *btf.Struct {
	var members []btf.Member
	add := func(name string, t btf.Type) {
		members = append(members, btf.Member{Name: name, Type: t, Offset: btf.Bits(len(members) * 64)})
	}
	add("type", b.uintMember(uint32(mapTypes[m.Type])))
	switch m.Type {
	case ir.MapRingBuf:
	case ir.MapProgArray:
		add("key_size", b.uintMember(progArraySlotSize))
		add("value_size", b.uintMember(progArraySlotSize))
	default:
		add("key", &btf.Pointer{Target: b.keyType(m)})
		add("value", &btf.Pointer{Target: b.structType(m.Value)})
	}
	add("max_entries", b.uintMember(m.MaxEntries))
	if flags := mapFlags(m); flags != 0 {
		add("map_flags", b.uintMember(flags))
	}
	size := uint32(len(members) * 8)
	if m.Type == ir.MapProgArray {
		add("values", &btf.Array{
			Index: b.arraySize,
			Type:  &btf.Pointer{Target: b.progProto},
		})
	}
	return &btf.Struct{Size: size, Members: members}
}

// progFunc returns the BTF function describing the program called name.
func (b *btfTypes) progFunc(name string) *btf.Func {
	return &btf.Func{Name: name, Type: b.progProto, Linkage: btf.GlobalFunc}
}
