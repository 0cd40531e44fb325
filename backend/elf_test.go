package backend

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Return codes of the test programs: the entry program returns
// entryFallthrough only when its tail call into slot 1 fails; the program in
// slot 1 returns tailReturn.
const (
	entryFallthrough = 2 // TC_ACT_SHOT
	tailReturn       = 0 // TC_ACT_OK
)

func elfTestPos(line, col int) source.Pos {
	return source.Pos{File: "policy.cue", Line: line, Col: col}
}

// elfTestMaps returns one map of every kind the test programs use, sorted by
// name as ir.Module keeps them.
func elfTestMaps() []*ir.Map {
	return []*ir.Map{
		{
			Name: "calls", Type: ir.MapProgArray, MaxEntries: 4,
			Slots: []string{"", "tail"},
		},
		{
			Name: "counters", Type: ir.MapPerCPUArray, MaxEntries: 8,
			Key:   ir.Struct{Name: "counter_key", Fields: []ir.Field{{Name: "index", Size: 4}}},
			Value: ir.Struct{Name: "counter_value", Fields: []ir.Field{{Name: "packets", Size: 8}, {Name: "bytes", Size: 8}}},
		},
		{
			Name: "events", Type: ir.MapRingBuf, MaxEntries: 1 << 16,
		},
		{
			Name: "ipcache", Type: ir.MapLPMTrie, MaxEntries: 1024,
			Key:   ir.Struct{Name: "ipcache_key", Fields: []ir.Field{{Name: "prefixlen", Size: 4}, {Name: "addr", Size: 4}}},
			Value: ir.Struct{Name: "ipcache_value", Fields: []ir.Field{{Name: "identity", Size: 4}}},
		},
		{
			Name: "policy", Type: ir.MapHash, MaxEntries: 4096,
			Key: ir.Struct{Name: "policy_key", Fields: []ir.Field{
				{Name: "identity", Size: 4}, {Name: "dport", Size: 2}, {Name: "proto", Size: 1}, {Name: "dir", Size: 1},
			}},
			// action is padded to cookie's alignment: cookie sits at 4.
			Value: ir.Struct{Name: "policy_value", Fields: []ir.Field{{Name: "action", Size: 1}, {Name: "cookie", Size: 4}}},
		},
	}
}

// elfTestObject is a hand-built object: a tc program that looks up a hash map
// and an LPM trie and tail-calls slot 1 of a program array, the tc program
// in that slot, and an XDP program.
func elfTestObject() *Object {
	entry := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1).WithSource(elfTestPos(10, 3)),
		// policy lookup with an all-zero key.
		asm.StoreImm(asm.RFP, -8, 0, asm.Word).WithSource(elfTestPos(11, 5)),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.LoadMapPtr(asm.R1, 0).WithReference("policy"),
		asm.FnMapLookupElem.Call(),
		// A symbolic jump, which Marshal resolves.
		asm.JEq.Imm(asm.R0, 0, "lookup_ipcache").WithSource(elfTestPos(12, 5)),
		asm.Mov.Imm(asm.R7, 1),
		// ipcache lookup of 0.0.0.0/32.
		asm.StoreImm(asm.RFP, -16, 32, asm.Word).WithSymbol("lookup_ipcache").WithSource(elfTestPos(14, 5)),
		asm.StoreImm(asm.RFP, -12, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.LoadMapPtr(asm.R1, 0).WithReference("ipcache"),
		asm.FnMapLookupElem.Call(),
		// tail call into slot 1.
		asm.Mov.Reg(asm.R1, asm.R6).WithSource(elfTestPos(16, 7)),
		asm.LoadMapPtr(asm.R2, 0).WithReference("calls"),
		asm.Mov.Imm(asm.R3, 1),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, entryFallthrough).WithSource(elfTestPos(17, 7)),
		asm.Return(),
	}
	tail := asm.Instructions{
		asm.Mov.Imm(asm.R0, tailReturn).WithSource(elfTestPos(20, 3)),
		asm.Return(),
	}
	pass := asm.Instructions{
		// No position on the first instruction: the program's is used.
		asm.Mov.Imm(asm.R0, 2), // XDP_PASS
		asm.Return().WithSource(elfTestPos(31, 3)),
	}
	return &Object{
		Programs: []*Program{
			{Name: "entry", Section: "tc", Type: ebpf.SchedCLS, Insns: entry, Pos: elfTestPos(9, 1)},
			{Name: "tail", Section: "tc", Type: ebpf.SchedCLS, Insns: tail, Pos: elfTestPos(19, 1)},
			{Name: "pass", Section: "xdp", Type: ebpf.XDP, Insns: pass, Pos: elfTestPos(30, 1)},
		},
		Maps:    elfTestMaps(),
		License: License,
	}
}

func mustWriteELF(t *testing.T, o *Object) []byte {
	t.Helper()
	b, err := WriteELF(o)
	if err != nil {
		t.Fatalf("WriteELF: %v", err)
	}
	return b
}

func loadSpec(t *testing.T, obj []byte) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatalf("LoadCollectionSpecFromReader: %v", err)
	}
	return spec
}

// writeObjectFile writes obj where the command-line loaders can read it.
func writeObjectFile(t *testing.T, obj []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ebpfc.o")
	if err := os.WriteFile(path, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkStructBTF reports whether got, read back from an object, is the
// struct s describes: same name, size, and unsigned members of the field
// sizes at ir.Struct.Offsets.
func checkStructBTF(t *testing.T, what string, got btf.Type, s ir.Struct) {
	t.Helper()
	st, ok := got.(*btf.Struct)
	if !ok {
		t.Errorf("%s: BTF type %v, want a struct", what, got)
		return
	}
	offs, size := s.Offsets()
	if st.Name != s.Name || int(st.Size) != size || len(st.Members) != len(s.Fields) {
		t.Errorf("%s: BTF %s size %d with %d members, want %s size %d with %d", what, st.Name, st.Size, len(st.Members), s.Name, size, len(s.Fields))
		return
	}
	for i, m := range st.Members {
		f := s.Fields[i]
		in, ok := m.Type.(*btf.Int)
		if m.Name != f.Name || int(m.Offset.Bytes()) != offs[i] || !ok || int(in.Size) != f.Size || in.Encoding != btf.Unsigned {
			t.Errorf("%s: member %d is %s %v at %d, want unsigned %s of %d bytes at %d", what, i, m.Name, m.Type, m.Offset.Bytes(), f.Name, f.Size, offs[i])
		}
	}
}

// checkKeyBTF checks the BTF key type of m: its struct, or for arrays a
// u32 typedef named after the struct.
func checkKeyBTF(t *testing.T, m *ir.Map, got btf.Type) {
	t.Helper()
	if !isArrayMap(m.Type) {
		checkStructBTF(t, m.Name+" key", got, m.Key)
		return
	}
	td, ok := got.(*btf.Typedef)
	if !ok || td.Name != m.Key.Name {
		t.Errorf("%s key: BTF %v, want typedef %s", m.Name, got, m.Key.Name)
		return
	}
	if in, ok := td.Type.(*btf.Int); !ok || in.Size != 4 || in.Encoding != btf.Unsigned {
		t.Errorf("%s key: typedef of %v, want a u32", m.Name, td.Type)
	}
}

func TestMapSpec(t *testing.T) {
	for _, m := range elfTestMaps() {
		spec := MapSpec(m)
		if spec.Name != m.Name || spec.MaxEntries != m.MaxEntries {
			t.Errorf("%s: spec %s with %d entries", m.Name, spec.Name, spec.MaxEntries)
		}
		switch m.Type {
		case ir.MapRingBuf:
			if spec.Type != ebpf.RingBuf || spec.Key != nil || spec.Value != nil || spec.KeySize != 0 || spec.ValueSize != 0 {
				t.Errorf("ring buffer spec %+v has a key or value", spec)
			}
		case ir.MapProgArray:
			if spec.Type != ebpf.ProgramArray || spec.KeySize != 4 || spec.ValueSize != 4 || spec.Key != nil || spec.Value != nil {
				t.Errorf("program array spec %+v: want u32 key and value without BTF", spec)
			}
			want := []ebpf.MapKV{{Key: uint32(1), Value: "tail"}}
			if !slices.Equal(spec.Contents, want) {
				t.Errorf("program array contents %v, want %v", spec.Contents, want)
			}
		default:
			if int(spec.KeySize) != m.Key.Size() || int(spec.ValueSize) != m.Value.Size() {
				t.Errorf("%s: key/value size %d/%d, want %d/%d", m.Name, spec.KeySize, spec.ValueSize, m.Key.Size(), m.Value.Size())
			}
			checkKeyBTF(t, m, spec.Key)
			checkStructBTF(t, m.Name+" value", spec.Value, m.Value)
		}
	}

	lpm := MapSpec(&ir.Map{Name: "lpm", Type: ir.MapLPMTrie, Flags: 0x10, MaxEntries: 1,
		Key: elfTestMaps()[3].Key, Value: elfTestMaps()[3].Value})
	if lpm.Type != ebpf.LPMTrie || lpm.Flags != 0x10|noPrealloc {
		t.Errorf("LPM trie: type %s flags %#x, want LPMTrie with BPF_F_NO_PREALLOC added to 0x10", lpm.Type, lpm.Flags)
	}
	// The policy value's cookie is aligned after a one-byte action.
	value := MapSpec(elfTestMaps()[4]).Value.(*btf.Struct)
	if value.Size != 8 || value.Members[1].Offset.Bytes() != 4 {
		t.Errorf("policy value BTF: size %d, cookie at %d; want 8 and 4", value.Size, value.Members[1].Offset.Bytes())
	}
}

// TestWriteELFLoadCollectionSpec reads the object back with cilium/ebpf and
// checks it describes the same programs and maps as the Object.
func TestWriteELFLoadCollectionSpec(t *testing.T) {
	o := elfTestObject()
	spec := loadSpec(t, mustWriteELF(t, o))

	if len(spec.Programs) != len(o.Programs) {
		t.Errorf("%d programs, want %d", len(spec.Programs), len(o.Programs))
	}
	for _, p := range o.Programs {
		ps := spec.Programs[p.Name]
		if ps == nil {
			t.Errorf("program %s missing", p.Name)
			continue
		}
		if ps.Type != p.Type || ps.SectionName != p.Section || ps.License != o.License {
			t.Errorf("program %s: type %s section %q license %q, want %s %q %q", p.Name, ps.Type, ps.SectionName, ps.License, p.Type, p.Section, o.License)
		}
		if len(ps.Instructions) != len(p.Insns) {
			t.Errorf("program %s: %d instructions, want %d", p.Name, len(ps.Instructions), len(p.Insns))
			continue
		}
		for i, ins := range p.Insns {
			got := ps.Instructions[i]
			if ref := ins.Reference(); ins.IsLoadFromMap() && (got.Reference() != ref || !got.IsLoadFromMap()) {
				t.Errorf("program %s insn %d: %v references %q, want a load of map %q", p.Name, i, got, got.Reference(), ref)
			}
			if pos, ok := sourcePos(ins.Source()); ok {
				if got.Source() == nil || got.Source().String() != pos.String() {
					t.Errorf("program %s insn %d: line info %v, want %s", p.Name, i, got.Source(), pos)
				}
			}
		}
		if fn := btf.FuncMetadata(&ps.Instructions[0]); fn == nil || fn.Name != p.Name {
			t.Errorf("program %s: func info %v", p.Name, fn)
		}
	}
	// The XDP program's first instruction has no position of its own.
	if src := spec.Programs["pass"].Instructions[0].Source(); src == nil || src.String() != elfTestPos(30, 1).String() {
		t.Errorf("pass: first line info %v, want the program's position", src)
	}

	if len(spec.Maps) != len(o.Maps) {
		t.Errorf("%d maps, want %d", len(spec.Maps), len(o.Maps))
	}
	for _, m := range o.Maps {
		got, want := spec.Maps[m.Name], MapSpec(m)
		if got == nil {
			t.Errorf("map %s missing", m.Name)
			continue
		}
		if got.Type != want.Type || got.KeySize != want.KeySize || got.ValueSize != want.ValueSize ||
			got.MaxEntries != want.MaxEntries || got.Flags != want.Flags || !slices.Equal(got.Contents, want.Contents) {
			t.Errorf("map %s:\n got  %v %d/%d max %d flags %#x contents %v\n want %v %d/%d max %d flags %#x contents %v", m.Name,
				got.Type, got.KeySize, got.ValueSize, got.MaxEntries, got.Flags, got.Contents,
				want.Type, want.KeySize, want.ValueSize, want.MaxEntries, want.Flags, want.Contents)
		}
		if want.Key == nil {
			if got.Key != nil || got.Value != nil {
				t.Errorf("map %s: BTF key %v value %v, want none", m.Name, got.Key, got.Value)
			}
			continue
		}
		checkKeyBTF(t, m, got.Key)
		checkStructBTF(t, m.Name+" value", got.Value, m.Value)
	}
}

func TestWriteELFDeterministic(t *testing.T) {
	o := elfTestObject()
	before := slices.Clone(o.Programs[0].Insns)
	first := mustWriteELF(t, o)
	if !bytes.Equal(first, mustWriteELF(t, elfTestObject())) {
		t.Error("two writes of the same object differ")
	}
	// WriteELF resolves jumps on a copy: the caller's program is unchanged.
	for i := range before {
		if o.Programs[0].Insns[i].Offset != before[i].Offset {
			t.Fatalf("instruction %d changed from %v to %v", i, before[i], o.Programs[0].Insns[i])
		}
	}

	// Maps are written by name whatever order they come in.
	shuffled := elfTestObject()
	slices.Reverse(shuffled.Maps)
	if !bytes.Equal(first, mustWriteELF(t, shuffled)) {
		t.Error("map order changes the object")
	}

	// Program order is module order and shows in the object, which still
	// loads the same programs.
	reordered := elfTestObject()
	slices.Reverse(reordered.Programs)
	other := mustWriteELF(t, reordered)
	if bytes.Equal(first, other) {
		t.Error("program order does not show in the object")
	}
	if !bytes.Equal(other, mustWriteELF(t, reordered)) {
		t.Error("two writes of the reordered object differ")
	}
	spec := loadSpec(t, other)
	for _, p := range elfTestObject().Programs {
		if spec.Programs[p.Name] == nil {
			t.Errorf("reordered object lacks program %s", p.Name)
		}
	}
}

func TestWriteELFErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Object)
		want   string
	}{
		{"no license", func(o *Object) { o.License = "" }, "no license"},
		{"unknown map", func(o *Object) { o.Maps = o.Maps[1:] }, `loads map "calls"`},
		{"section type", func(o *Object) { o.Programs[2].Type = ebpf.SchedCLS }, `from section "xdp"`},
		{"unknown section", func(o *Object) { o.Programs[2].Section = "xdp/frags" }, `section "xdp/frags"`},
		{"slot program", func(o *Object) { o.Maps[0].Slots = []string{"nope"} }, `names program "nope"`},
		{"slots beyond max", func(o *Object) { o.Maps[0].MaxEntries = 1 }, "max_entries 1"},
		{"duplicate name", func(o *Object) { o.Maps[1].Name = "entry" }, "same name"},
		{"bad name", func(o *Object) { o.Programs[1].Name = "tail-1" }, "not a C identifier"},
		{"struct conflict", func(o *Object) { o.Maps[4].Value.Name = "ipcache_key" }, "two different layouts"},
		{"array key", func(o *Object) { o.Maps[1].Key.Fields[0].Size = 8 }, "array's key"},
		{"field size", func(o *Object) { o.Maps[4].Value.Fields[0].Size = 3 }, "has size 3"},
		{"bpf call", func(o *Object) {
			o.Programs[1].Insns = asm.Instructions{asm.Call.Label("f"), asm.Return(), asm.Return().WithSymbol("f")}
		}, "BPF-to-BPF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := elfTestObject()
			tc.change(o)
			_, err := WriteELF(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WriteELF error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestBTFMapsDatasec checks the .maps DATASEC against the ELF symbols it
// describes: libbpf takes each map's extent from the VAR's offset and size
// (and fixes up neither when the DATASEC has a size), so they must be
// exactly the symbols'.
func TestBTFMapsDatasec(t *testing.T) {
	obj := mustWriteELF(t, elfTestObject())
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	maps := f.Section(".maps")
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	bySym := make(map[string]elf.Symbol)
	for _, s := range syms {
		if int(s.Section) < len(f.Sections) && f.Sections[s.Section] == maps {
			bySym[s.Name] = s
		}
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	var ds *btf.Datasec
	if err := spec.TypeByName(".maps", &ds); err != nil {
		t.Fatal(err)
	}
	if uint64(ds.Size) != maps.Size {
		t.Errorf("DATASEC size %d, section size %d", ds.Size, maps.Size)
	}
	if len(ds.Vars) != len(bySym) {
		t.Errorf("%d VARs for %d map symbols", len(ds.Vars), len(bySym))
	}
	for _, vsi := range ds.Vars {
		v := vsi.Type.(*btf.Var)
		sym := bySym[v.Name]
		if v.Linkage != btf.GlobalVar || uint64(vsi.Offset) != sym.Value || uint64(vsi.Size) != sym.Size {
			t.Errorf("VAR %s (%s) at %d size %d, symbol at %d size %d", v.Name, v.Linkage, vsi.Offset, vsi.Size, sym.Value, sym.Size)
		}
		if elf.ST_TYPE(sym.Info) != elf.STT_OBJECT || elf.ST_BIND(sym.Info) != elf.STB_GLOBAL {
			t.Errorf("map symbol %s: %v %v, want a global object", sym.Name, elf.ST_TYPE(sym.Info), elf.ST_BIND(sym.Info))
		}
	}
	if p := f.Section("tc"); p.Flags != elf.SHF_ALLOC|elf.SHF_EXECINSTR || p.Addralign != 8 {
		t.Errorf("section tc: flags %v align %d", p.Flags, p.Addralign)
	}
}

// TestWriteELFWithoutMaps checks an object with no maps: no .maps section
// and no DATASEC, which loaders accept.
func TestWriteELFWithoutMaps(t *testing.T) {
	o := elfTestObject()
	o.Programs = o.Programs[2:]
	o.Maps = nil
	obj := mustWriteELF(t, o)
	spec := loadSpec(t, obj)
	if len(spec.Maps) != 0 || spec.Programs["pass"] == nil {
		t.Fatalf("spec has maps %v and programs %v", spec.Maps, spec.Programs)
	}
	testenv.RequireKernel(t)
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	coll.Close()
}

// elfTestPacket is a UDP/IPv4 packet for BPF_PROG_TEST_RUN.
func elfTestPacket(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       []byte{2, 0, 0, 0, 0, 1},
		DstMAC:       []byte{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("ebpfc")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWriteELFRunInKernel loads the object with cilium/ebpf and shows the
// program array the object initialises carries the tail call.
func TestWriteELFRunInKernel(t *testing.T) {
	testenv.RequireKernel(t)
	spec := loadSpec(t, mustWriteELF(t, elfTestObject()))
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			t.Fatalf("NewCollection: %+v", verr)
		}
		t.Fatalf("NewCollection: %v", err)
	}
	defer coll.Close()

	pkt := elfTestPacket(t)
	run := func(name string) uint32 {
		t.Helper()
		ret, err := coll.Programs[name].Run(&ebpf.RunOptions{Data: pkt})
		if err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		return ret
	}
	if got := run("entry"); got != tailReturn {
		t.Errorf("entry returned %d, want %d from the program in slot 1", got, tailReturn)
	}
	// Emptying the slot makes the tail call fall through: the return code
	// above came from the tail call.
	if err := coll.Maps["calls"].Delete(uint32(1)); err != nil {
		t.Fatal(err)
	}
	if got := run("entry"); got != entryFallthrough {
		t.Errorf("entry with slot 1 empty returned %d, want %d", got, entryFallthrough)
	}
	if got := run("pass"); got != 2 {
		t.Errorf("pass returned %d, want XDP_PASS", got)
	}
}

// bpftoolMapTypes names the map types the way bpftool prints them.
var bpftoolMapTypes = map[ebpf.MapType]string{
	ebpf.Hash:         "hash",
	ebpf.PerCPUArray:  "percpu_array",
	ebpf.LPMTrie:      "lpm_trie",
	ebpf.ProgramArray: "prog_array",
	ebpf.RingBuf:      "ringbuf",
}

var bpftoolProgTypes = map[ebpf.ProgramType]string{
	ebpf.SchedCLS: "sched_cls",
	ebpf.XDP:      "xdp",
}

// TestWriteELFBpftoolLoadall loads the object with libbpf through bpftool
// and checks that what libbpf created matches what LoadCollectionSpec
// reads, including the program array libbpf fills from .rel.maps.
func TestWriteELFBpftoolLoadall(t *testing.T) {
	testenv.RequireKernel(t)
	bpftool := testenv.RequireTool(t, "bpftool")
	testenv.MountBPFFS(t)

	obj := mustWriteELF(t, elfTestObject())
	spec := loadSpec(t, obj)
	path := writeObjectFile(t, obj)
	dir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
	t.Cleanup(func() { os.RemoveAll(dir) })
	testenv.Run(t, bpftool, "prog", "loadall", path, dir, "pinmaps", filepath.Join(dir, "maps"))

	progIDs := make(map[string]int)
	for name, ps := range spec.Programs {
		var info struct {
			ID    int    `json:"id"`
			Name  string `json:"name"`
			Type  string `json:"type"`
			BTFID int    `json:"btf_id"`
		}
		out := testenv.Run(t, bpftool, "-j", "prog", "show", "pinned", filepath.Join(dir, name))
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("bpftool prog show %s: %v\n%s", name, err, out)
		}
		if info.Name != name || info.Type != bpftoolProgTypes[ps.Type] {
			t.Errorf("bpftool: program %s of type %s, want %s of type %s", info.Name, info.Type, name, ps.Type)
		}
		if info.BTFID == 0 {
			t.Errorf("program %s loaded without BTF", name)
		}
		progIDs[name] = info.ID
	}

	// The line info reaches the kernel: the dump shows the CUE positions.
	dump := testenv.Run(t, bpftool, "prog", "dump", "xlated", "pinned", filepath.Join(dir, "entry"))
	if !bytes.Contains(dump, []byte("policy.cue:16:7")) {
		t.Errorf("bpftool prog dump lacks CUE positions:\n%s", dump)
	}

	for name, ms := range spec.Maps {
		var info struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			KeySize    uint32 `json:"bytes_key"`
			ValueSize  uint32 `json:"bytes_value"`
			MaxEntries uint32 `json:"max_entries"`
			Flags      uint32 `json:"flags"`
			BTFID      int    `json:"btf_id"`
		}
		out := testenv.Run(t, bpftool, "-j", "map", "show", "pinned", filepath.Join(dir, "maps", name))
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("bpftool map show %s: %v\n%s", name, err, out)
		}
		if info.Name != name || info.Type != bpftoolMapTypes[ms.Type] || info.KeySize != ms.KeySize ||
			info.ValueSize != ms.ValueSize || info.MaxEntries != ms.MaxEntries || info.Flags != ms.Flags {
			t.Errorf("bpftool: map %+v, LoadCollectionSpec: %s %s %d/%d max %d flags %#x", info,
				name, ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags)
		}
		if ms.Key != nil && info.BTFID == 0 {
			t.Errorf("map %s created without BTF", name)
		}
	}

	// libbpf put the tail program in slot 1 of the program array.
	var entries []struct {
		Key   []string `json:"key"`
		Value []string `json:"value"`
	}
	out := testenv.Run(t, bpftool, "-j", "map", "dump", "pinned", filepath.Join(dir, "maps", "calls"))
	if err := json.Unmarshal(out, &entries); err != nil {
		t.Fatalf("bpftool map dump calls: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%v", hexLE32(1))
	wantValue := fmt.Sprintf("%v", hexLE32(uint32(progIDs["tail"])))
	if len(entries) != 1 || fmt.Sprint(entries[0].Key) != want || fmt.Sprint(entries[0].Value) != wantValue {
		t.Errorf("program array holds %s, want key %s value %s (program tail)", out, want, wantValue)
	}
}

// hexLE32 is v as bpftool -j prints a 4-byte key or value.
func hexLE32(v uint32) []string {
	return []string{
		fmt.Sprintf("0x%02x", byte(v)), fmt.Sprintf("0x%02x", byte(v>>8)),
		fmt.Sprintf("0x%02x", byte(v>>16)), fmt.Sprintf("0x%02x", byte(v>>24)),
	}
}

// TestWriteELFIproute2 attaches the object's XDP and tc programs with ip and
// tc, which load it through libbpf, to a veth in a network namespace of its
// own.
//
// iproute2 loads only the program it attaches, and libbpf then fails to
// fill a program array slot naming any other program of the object (the
// slot's fd is -1). So an object whose program arrays are initialised
// cannot be attached with iproute2 unless every slot holds the attached
// program; this test uses the object with its slots left to the runtime.
func TestWriteELFIproute2(t *testing.T) {
	testenv.RequireKernel(t)
	ip := testenv.RequireTool(t, "ip")
	o := elfTestObject()
	o.Maps[0].Slots = nil
	path := writeObjectFile(t, mustWriteELF(t, o))

	ns := testenv.NewNetns(t)
	testenv.Run(t, ip, "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")

	testenv.Run(t, ip, "-n", ns, "link", "set", "dev", "veth0", "xdp", "obj", path, "sec", "xdp")
	if out := testenv.Run(t, ip, "-n", ns, "link", "show", "veth0"); !bytes.Contains(out, []byte("prog/xdp id")) {
		t.Errorf("ip link show: no XDP program attached:\n%s", out)
	}

	t.Run("tc", func(t *testing.T) {
		tc := testenv.RequireTool(t, "tc")
		testenv.Run(t, tc, "-n", ns, "qdisc", "add", "dev", "veth0", "clsact")
		testenv.Run(t, tc, "-n", ns, "filter", "add", "dev", "veth0", "ingress", "bpf", "da", "obj", path, "sec", "tc")
		if out := testenv.Run(t, tc, "-n", ns, "filter", "show", "dev", "veth0", "ingress"); !bytes.Contains(out, []byte("direct-action")) {
			t.Errorf("tc filter show: no bpf filter attached:\n%s", out)
		}
	})
}
