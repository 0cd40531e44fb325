package vm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/asmtext"
)

// assemble assembles a test program, failing the test on errors.
func assemble(t *testing.T, src string) asm.Instructions {
	t.Helper()
	insns, err := asmtext.Assemble(t.Name(), 1, src)
	if err != nil {
		t.Fatal(err)
	}
	return insns
}

// machine builds a Machine with one program "main" of type typ and maps.
func machine(t *testing.T, typ ebpf.ProgramType, src string, opts vm.Options, maps ...*ebpf.MapSpec) *vm.Machine {
	t.Helper()
	spec := &ebpf.CollectionSpec{
		Maps:     map[string]*ebpf.MapSpec{},
		Programs: map[string]*ebpf.ProgramSpec{"main": {Name: "main", Type: typ, Instructions: assemble(t, src)}},
	}
	for _, m := range maps {
		spec.Maps[m.Name] = m
	}
	m, err := vm.NewMachine(spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func run(t *testing.T, m *vm.Machine, ctx vm.Context) uint64 {
	t.Helper()
	res, err := m.Run("main", ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res.Return
}

// updateProg calls map_update_elem(map, &key(r6), &value(r7), flags) from
// the registers a test sets through memory: mem holds key u32 at 0,
// value u64 at 8, flags u64 at 16; r0 is the helper's result.
const updateProg = `
	mov %r6, %r1
	lddw %r1, m
	mov %r2, %r6
	mov %r3, %r6
	add %r3, 8
	ldxdw %r4, [%r6+16]
	call 2
	exit
`

func updateMem(key uint32, val, flags uint64) *vm.Mem {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b, key)
	binary.LittleEndian.PutUint64(b[8:], val)
	binary.LittleEndian.PutUint64(b[16:], flags)
	return &vm.Mem{Data: b}
}

func errno(e vm.Errno) uint64 { return uint64(-int64(e)) }

func TestHashUpdateFlags(t *testing.T) {
	spec := &ebpf.MapSpec{Name: "m", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 2}
	m := machine(t, ebpf.UnspecifiedProgram, updateProg, vm.Options{}, spec)
	for _, tc := range []struct {
		key   uint32
		flags uint64
		want  uint64
	}{
		{1, vm.UpdateExist, errno(vm.ENOENT)},
		{1, vm.UpdateNoExist, 0},
		{1, vm.UpdateNoExist, errno(vm.EEXIST)},
		{1, vm.UpdateExist, 0},
		{2, vm.UpdateAny, 0},
		{3, vm.UpdateAny, errno(vm.E2BIG)}, // full
		{2, vm.UpdateAny, 0},               // replacing works when full
		{2, 7, errno(vm.EINVAL)},
	} {
		if got := run(t, m, updateMem(tc.key, 100+uint64(tc.key), tc.flags)); got != tc.want {
			t.Errorf("update key %d flags %d: r0 = %#x, want %#x", tc.key, tc.flags, got, tc.want)
		}
	}
	v, err := m.Map("m").Lookup(u32(1))
	if err != nil || !bytes.Equal(v, u64(101)) {
		t.Errorf("m[1] = %x, %v", v, err)
	}
	if err := m.Map("m").Delete(u32(9)); !errors.Is(err, vm.ENOENT) {
		t.Errorf("delete of a missing key: %v", err)
	}
}

func TestLRUHashEvictsLeastRecentlyUsed(t *testing.T) {
	spec := &ebpf.MapSpec{Name: "m", Type: ebpf.LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 2}
	// Look up key 1 (making it recently used), then insert key 3.
	m := machine(t, ebpf.UnspecifiedProgram, `
	mov %r6, %r1
	lddw %r1, m
	mov %r2, %r6
	call 1
	lddw %r1, m
	mov %r2, %r6
	add %r2, 4
	mov %r3, %r6
	add %r3, 8
	mov %r4, 0
	call 2
	exit
`, vm.Options{}, spec)
	lru := m.Map("m")
	for _, k := range []uint32{1, 2} {
		if err := lru.Update(u32(k), u64(uint64(k)), vm.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	mem := make([]byte, 16)
	binary.LittleEndian.PutUint32(mem, 1)
	binary.LittleEndian.PutUint32(mem[4:], 3)
	binary.LittleEndian.PutUint64(mem[8:], 33)
	if r0 := run(t, m, &vm.Mem{Data: mem}); r0 != 0 {
		t.Fatalf("insert into a full LRU map: r0 = %#x", r0)
	}
	var keys []uint32
	for _, e := range lru.Entries() {
		keys = append(keys, binary.LittleEndian.Uint32(e.Key))
	}
	if len(keys) != 2 || keys[0] != 1 || keys[1] != 3 {
		t.Errorf("keys after eviction = %v, want [1 3] (2 was least recently used)", keys)
	}
}

func TestArrayAndPerCPU(t *testing.T) {
	arr := &ebpf.MapSpec{Name: "m", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4}
	m := machine(t, ebpf.UnspecifiedProgram, updateProg, vm.Options{}, arr)
	for _, tc := range []struct {
		key   uint32
		flags uint64
		want  uint64
	}{
		{0, vm.UpdateAny, 0},
		{3, vm.UpdateExist, 0},
		{1, vm.UpdateNoExist, errno(vm.EEXIST)},
		{4, vm.UpdateAny, errno(vm.E2BIG)},
	} {
		if got := run(t, m, updateMem(tc.key, 7, tc.flags)); got != tc.want {
			t.Errorf("array update key %d flags %d: r0 = %#x, want %#x", tc.key, tc.flags, got, tc.want)
		}
	}
	if n := len(m.Map("m").Entries()); n != 4 {
		t.Errorf("an array lists every index: got %d entries", n)
	}

	// A per-CPU array: a program's atomic add changes only its CPU's slot.
	pc := &ebpf.MapSpec{Name: "m", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	m = machine(t, ebpf.UnspecifiedProgram, `
	stw [%r10-4], 0
	lddw %r1, m
	mov %r2, %r10
	add %r2, -4
	call 1
	jeq %r0, 0, out
	mov %r1, 5
	lock add [%r0], %r1
	call 8
out:
	exit
`, vm.Options{NumCPU: 3, CPU: 1}, pc)
	if got := run(t, m, &vm.Mem{}); got != 1 {
		t.Errorf("bpf_get_smp_processor_id = %d, want 1", got)
	}
	if err := m.SetCPU(2); err != nil {
		t.Fatal(err)
	}
	run(t, m, &vm.Mem{})
	run(t, m, &vm.Mem{})
	vals, err := m.Map("m").LookupPerCPU(u32(0))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{u64(0), u64(5), u64(10)}
	for c := range want {
		if !bytes.Equal(vals[c], want[c]) {
			t.Errorf("CPU %d: %x, want %x", c, vals[c], want[c])
		}
	}
	if err := m.SetCPU(3); err == nil {
		t.Error("SetCPU(3) of 3 CPUs succeeded")
	}
}

func TestLPMTrie(t *testing.T) {
	spec := &ebpf.MapSpec{Name: "m", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 8, Flags: 1}
	// r0 = value of the lookup of the key in mem, or 0xffff on a miss.
	m := machine(t, ebpf.UnspecifiedProgram, `
	mov %r2, %r1
	lddw %r1, m
	call 1
	jeq %r0, 0, miss
	ldxw %r0, [%r0]
	exit
miss:
	mov %r0, 0xffff
	exit
`, vm.Options{}, spec)
	key := func(pl uint32, a, b, c, d byte) []byte { return append(u32(pl), a, b, c, d) }
	lpm := m.Map("m")
	for _, e := range []struct {
		k []byte
		v uint32
	}{
		{key(8, 10, 0, 0, 0), 8},
		{key(16, 10, 1, 0, 0), 16},
		{key(24, 10, 1, 2, 99), 24}, // bits beyond the prefix do not matter
		{key(0, 0, 0, 0, 0), 0},
	} {
		if err := lpm.Update(e.k, u32(e.v), vm.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		k    []byte
		want uint64
	}{
		{key(32, 10, 1, 2, 3), 24},
		{key(32, 10, 1, 3, 3), 16},
		{key(32, 10, 2, 3, 3), 8},
		{key(32, 11, 0, 0, 1), 0},
		{key(20, 10, 1, 2, 3), 16}, // the key's own prefix length bounds the match
		{key(4, 10, 1, 2, 3), 0},
	} {
		if got := run(t, m, &vm.Mem{Data: tc.k}); got != tc.want {
			t.Errorf("lookup %x: %#x, want %#x", tc.k, got, tc.want)
		}
	}
	if err := lpm.Update(key(33, 0, 0, 0, 0), u32(1), vm.UpdateAny); !errors.Is(err, vm.EINVAL) {
		t.Errorf("prefix length 33 of 32 bits: %v", err)
	}
	if err := lpm.Delete(key(24, 10, 1, 2, 0)); err != nil {
		t.Errorf("delete /24: %v", err)
	}
	if got := run(t, m, &vm.Mem{Data: key(32, 10, 1, 2, 3)}); got != 16 {
		t.Errorf("after deleting the /24: %d, want 16", got)
	}
	if _, err := vm.NewMachine(&ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"x": {Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 1}}}, vm.Options{}); err == nil || !strings.Contains(err.Error(), "BPF_F_NO_PREALLOC") {
		t.Errorf("an LPM trie without BPF_F_NO_PREALLOC: %v", err)
	}
}

func TestRingbuf(t *testing.T) {
	spec := &ebpf.MapSpec{Name: "rb", Type: ebpf.RingBuf, MaxEntries: 4096}
	m := machine(t, ebpf.UnspecifiedProgram, `
	mov %r6, %r1
	lddw %r1, rb
	mov %r2, %r6
	mov %r3, 4
	mov %r4, 0
	call 130
	lddw %r1, rb
	mov %r2, 8
	mov %r3, 0
	call 131
	jeq %r0, 0, out
	stdw [%r0], 0x42
	mov %r1, %r0
	mov %r2, 0
	call 132
	lddw %r1, rb
	mov %r2, 8
	mov %r3, 0
	call 131
	jeq %r0, 0, out
	mov %r1, %r0
	mov %r2, 0
	call 133
	mov %r0, 0
out:
	exit
`, vm.Options{}, spec)
	run(t, m, &vm.Mem{Data: []byte{1, 2, 3, 4}})
	recs := m.Map("rb").Records()
	if len(recs) != 2 || !bytes.Equal(recs[0], []byte{1, 2, 3, 4}) || !bytes.Equal(recs[1], u64(0x42)) {
		t.Errorf("records = %x, want [01020304 4200000000000000] (the discarded one is not a record)", recs)
	}
	if again := m.Map("rb").Records(); len(again) != 0 {
		t.Errorf("records are read once, got %x again", again)
	}

	// A reserved record must be submitted or discarded.
	m = machine(t, ebpf.UnspecifiedProgram, `
	lddw %r1, rb
	mov %r2, 8
	mov %r3, 0
	call 131
	mov %r0, 0
	exit
`, vm.Options{}, spec)
	if _, err := m.Run("main", &vm.Mem{}); err == nil || !strings.Contains(err.Error(), "never submitted or discarded") {
		t.Errorf("leaked reservation: %v", err)
	}
}

// TestFaults: every bad access stops the run with a *Fault at the
// instruction, never a panic.
func TestFaults(t *testing.T) {
	arr := &ebpf.MapSpec{Name: "m", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1, Flags: 1 << 7}
	for _, tc := range []struct {
		name, src string
		ctx       vm.Context
		index     int
		want      string
	}{
		{"stack below the frame", "ldxdw %r0, [%r10-520]\nexit", &vm.Mem{}, 0, "read of 8 bytes at stack0-8 is out of bounds (valid: 0..512)"},
		{"stack above the frame", "mov %r0, 0\nstb [%r10], 1\nexit", &vm.Mem{}, 1, "write of 1 bytes at stack0+512 is out of bounds (valid: 0..512)"},
		{"null", "mov %r1, 0\nldxw %r0, [%r1+4]\nexit", &vm.Mem{}, 1, "null pointer dereference"},
		{"scalar as pointer", "lddw %r1, 0x123456789\nldxw %r0, [%r1]\nexit", &vm.Mem{}, 1, "not a pointer into any region"},
		{"mem overrun", "ldxw %r0, [%r1+2]\nexit", &vm.Mem{Data: make([]byte, 4)}, 0, "read of 4 bytes at mem+2 is out of bounds (valid: 0..4)"},
		{"packet past data_end", "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+60]\nexit", &vm.XDP{Packet: make([]byte, 60)}, 1, "read of 1 bytes at packet+316 is out of bounds (valid: 256..316)"},
		{"read-only ctx field", "stw [%r1+4], 1\nexit", vm.NewSKB(make([]byte, 60)), 0, "__sk_buff.pkt_type is read-only"},
		{"ctx padding", "ldxb %r0, [%r1+181]\nexit", vm.NewSKB(make([]byte, 60)), 0, "__sk_buff at offset 181: no field there"},
		{"ctx end", "ldxw %r0, [%r1+24]\nexit", &vm.XDP{Packet: make([]byte, 60)}, 0, "read of 4 bytes at ctx+24 is out of bounds (valid: 0..24)"},
		{"map pointer deref", "lddw %r1, m\nldxw %r0, [%r1]\nexit", &vm.Mem{}, 1, "a map pointer may only be passed to helpers"},
		{"read-only map value", "stw [%r10-4], 0\nlddw %r1, m\nmov %r2, %r10\nadd %r2, -4\ncall 1\nstw [%r0], 1\nexit", &vm.Mem{}, 5, "map value of m is read-only"},
		{"helper key out of bounds", "lddw %r1, m\nmov %r2, %r10\ncall 1\nexit", &vm.Mem{}, 2, "key: read of 4 bytes at stack0+512"},
		{"off the end", "mov %r0, 0", &vm.Mem{}, 0, "fell off the end"},
		{"endless loop", "ja -1\nexit", &vm.Mem{}, 0, "more than 1000 instructions"},
		{"unknown helper at run time", "mov %r1, 4242\ncall %r1\nexit", &vm.Mem{}, 1, "not supported by the interpreter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := ebpf.UnspecifiedProgram
			m := machine(t, typ, tc.src, vm.Options{MaxInstructions: 1000}, arr)
			_, err := m.Run("main", tc.ctx)
			var f *vm.Fault
			if !errors.As(err, &f) {
				t.Fatalf("got %v, want a *vm.Fault", err)
			}
			if f.Index != tc.index || !strings.Contains(f.Error(), tc.want) {
				t.Errorf("got %v (index %d), want %q at index %d", err, f.Index, tc.want, tc.index)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		insns asm.Instructions
		want  string
	}{
		{"unknown map", asm.Instructions{asm.LoadMapPtr(asm.R1, 0).WithReference("nope"), asm.Return()}, "instruction 0 (LoadMapPtr dst: r1 fd: 0 <nope>): references map nope"},
		{"unsupported helper", asm.Instructions{asm.FnGetCurrentPidTgid.Call(), asm.Return()}, "helper FnGetCurrentPidTgid is not supported by the interpreter"},
		{"jump out", asm.Instructions{asm.Ja.Label("x"), asm.Return()}, "jumps to label x, which the program does not define"},
		{"into lddw", asm.Instructions{{OpCode: asm.Ja.Op(asm.ImmSource), Offset: 1}, asm.LoadImm(asm.R0, 1, asm.DWord), asm.Return()}, "second half of a 64-bit load"},
		{"write r10", asm.Instructions{asm.Mov.Imm(asm.R10, 0), asm.Return()}, "r10 is the read-only frame pointer"},
		{"kfunc", asm.Instructions{{OpCode: asm.Call.Op(asm.ImmSource), Src: asm.PseudoKfuncCall}, asm.Return()}, "kfunc calls are not supported"},
		{"empty", asm.Instructions{}, "has no instructions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vm.RunMem(tc.insns, nil, vm.Options{})
			var le *vm.LoadError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a LoadError containing %q", err, tc.want)
			}
		})
	}
}

// TestCalls: bpf-to-bpf calls as cilium/ebpf links them (a reference to a
// symbol), each frame with its own stack and callee-saved r6-r9.
func TestCalls(t *testing.T) {
	insns := asm.Instructions{
		asm.StoreImm(asm.R10, -8, 11, asm.Word),
		asm.Mov.Imm(asm.R6, 6),
		asm.Mov.Imm(asm.R1, 30),
		asm.Instruction{OpCode: asm.Call.Op(asm.ImmSource), Src: asm.PseudoCall, Constant: -1}.WithReference("double"),
		// r0 = double(30) + stack[-8] (11, untouched by the callee) + r6 (6)
		asm.LoadMem(asm.R1, asm.R10, -8, asm.Word),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.Add.Reg(asm.R0, asm.R6),
		asm.Return(),
		asm.StoreImm(asm.R10, -8, 99, asm.Word).WithSymbol("double"),
		asm.Mov.Imm(asm.R6, 0),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.Return(),
	}
	res, err := vm.RunMem(insns, nil, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Return != 77 {
		t.Errorf("r0 = %d, want 77", res.Return)
	}
	// Unbounded recursion hits the frame limit.
	rec := asm.Instructions{
		asm.Instruction{OpCode: asm.Call.Op(asm.ImmSource), Src: asm.PseudoCall, Constant: -1}.WithReference("f").WithSymbol("f"),
		asm.Return(),
	}
	if _, err := vm.RunMem(rec, nil, vm.Options{}); err == nil || !strings.Contains(err.Error(), "call depth exceeds 8 frames") {
		t.Errorf("recursion: %v", err)
	}
}

// TestTailCalls: a program that tail-calls itself stops after 33 tail calls,
// as the kernel's MAX_TAIL_CALL_CNT allows; an empty slot falls through.
func TestTailCalls(t *testing.T) {
	prog := func(slot int32) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R2, 0).WithReference("progs"),
			asm.Mov.Imm(asm.R3, slot),
			asm.FnTailCall.Call(),
			asm.Mov.Imm(asm.R0, 1),
			asm.Return(),
		}
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"progs": {Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 2,
			Contents: []ebpf.MapKV{{Key: uint32(0), Value: "loop"}}}},
		Programs: map[string]*ebpf.ProgramSpec{
			"loop":  {Name: "loop", Type: ebpf.SchedCLS, Instructions: prog(0)},
			"empty": {Name: "empty", Type: ebpf.SchedCLS, Instructions: prog(1)},
		},
	}
	m, err := vm.NewMachine(spec, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Run("loop", vm.NewSKB(make([]byte, 60)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TailCalls) != 33 || res.Return != 1 {
		t.Errorf("%d tail calls, r0 = %d; want 33 and 1", len(res.TailCalls), res.Return)
	}
	res, err = m.Run("empty", vm.NewSKB(make([]byte, 60)))
	if err != nil || len(res.TailCalls) != 0 || res.Return != 1 {
		t.Errorf("empty slot: %v, %+v", err, res)
	}
}

func TestContexts(t *testing.T) {
	// XDP: bounds check against data_end, then read the EtherType.
	m := machine(t, ebpf.XDP, `
	ldxw %r2, [%r1+0]
	ldxw %r3, [%r1+4]
	mov %r4, %r2
	add %r4, 14
	jgt %r4, %r3, short
	ldxh %r0, [%r2+12]
	exit
short:
	mov %r0, 1
	exit
`, vm.Options{})
	pkt := make([]byte, 20)
	pkt[12], pkt[13] = 0x86, 0xdd
	if got := run(t, m, &vm.XDP{Packet: pkt}); got != 0xdd86 {
		t.Errorf("EtherType load = %#x", got)
	}
	if got := run(t, m, &vm.XDP{Packet: pkt[:10]}); got != 1 {
		t.Errorf("short packet: %d, want 1", got)
	}
	if _, err := m.Run("main", vm.NewSKB(pkt)); err == nil {
		t.Errorf("an XDP program ran on an __sk_buff")
	}

	// tc: writable fields come back; len is the packet's.
	m = machine(t, ebpf.SchedCLS, `
	ldxw %r0, [%r1+0]
	stw [%r1+8], 0x77
	stw [%r1+48], 5
	exit
`, vm.Options{})
	skb := vm.NewSKB(make([]byte, 42))
	if got := run(t, m, skb); got != 42 || skb.Mark != 0x77 || skb.CB[0] != 5 {
		t.Errorf("len %d, mark %#x, cb[0] %d", got, skb.Mark, skb.CB[0])
	}

	// sock_addr: rewrite the destination as a connect hook does.
	m = machine(t, ebpf.CGroupSockAddr, `
	ldxw %r2, [%r1+4]
	stw [%r1+4], 0x0100000a
	sth [%r1+24], 0x5000
	mov %r0, 1
	exit
`, vm.Options{})
	sa := &vm.SockAddr{UserFamily: 2, UserIP4: 0x0200000a, UserPort: 0x1f90}
	if got := run(t, m, sa); got != 1 || sa.UserIP4 != 0x0100000a || sa.UserPort != 0x5000 {
		t.Errorf("r0 %d, user_ip4 %#x, user_port %#x", got, sa.UserIP4, sa.UserPort)
	}
}

// TestChecksumHelpers rewrites an IPv4 destination with l3_csum_replace and
// l4_csum_replace (pseudo header) and checks both checksums against
// gopacket's for the rewritten packet.
func TestChecksumHelpers(t *testing.T) {
	build := func(dst [4]byte) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 0, 0, 1}, DstIP: dst[:]}
		tcp := &layers.TCP{SrcPort: 1000, DstPort: 80, SYN: true, Window: 1024}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	old, want := build([4]byte{10, 0, 0, 2}), build([4]byte{192, 168, 7, 9})
	// r6 = ctx; r7 = old daddr; r8 = new daddr (network order, as loaded).
	m := machine(t, ebpf.SchedCLS, `
	mov %r6, %r1
	ldxw %r2, [%r6+76]
	ldxw %r7, [%r2+30]
	mov32 %r8, 0x0907a8c0
	stxw [%r10-4], %r8
	mov %r1, %r6
	mov %r2, 30
	mov %r3, %r10
	add %r3, -4
	mov %r4, 4
	mov %r5, 0
	call 9
	mov %r1, %r6
	mov %r2, 24
	mov %r3, %r7
	mov %r4, %r8
	mov %r5, 4
	call 10
	mov %r1, %r6
	mov %r2, 50
	mov %r3, %r7
	mov %r4, %r8
	mov %r5, 0x14
	call 11
	exit
`, vm.Options{})
	res, err := m.Run("main", vm.NewSKB(old))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Packet, want) {
		t.Errorf("rewritten packet\n got %x\nwant %x", res.Packet, want)
	}
}

func TestXDPAdjustHeadAndRedirect(t *testing.T) {
	m := machine(t, ebpf.XDP, `
	mov %r6, %r1
	mov %r2, 4
	call 44
	jne %r0, 0, fail
	mov %r1, 3
	mov %r2, 0
	call 23
	exit
fail:
	mov %r0, 0
	exit
`, vm.Options{})
	pkt := []byte("0123456789abcdefghij")
	res, err := m.Run("main", &vm.XDP{Packet: pkt})
	if err != nil {
		t.Fatal(err)
	}
	if res.Return != 4 || string(res.Packet) != "456789abcdefghij" || res.Redirect == nil || res.Redirect.Ifindex != 3 {
		t.Errorf("r0 %d, packet %q, redirect %+v", res.Return, res.Packet, res.Redirect)
	}
	// Less than an Ethernet header may not remain.
	if res, err := m.Run("main", &vm.XDP{Packet: pkt[:16]}); err != nil || res.Return != 0 {
		t.Errorf("adjust below 14 bytes: %v, %+v", err, res)
	}
}

type recorder struct {
	vm.NopTracer
	steps   int
	helpers []asm.BuiltinFunc
	lookups []vm.MapLookup
}

func (r *recorder) Step(*vm.Step)             { r.steps++ }
func (r *recorder) Helper(h *vm.HelperEvent)  { r.helpers = append(r.helpers, h.Helper) }
func (r *recorder) MapLookup(l *vm.MapLookup) { r.lookups = append(r.lookups, *l) }

func TestTracerAndInjectedSources(t *testing.T) {
	rec := &recorder{}
	arr := &ebpf.MapSpec{Name: "m", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	m := machine(t, ebpf.UnspecifiedProgram, `
	call 5
	mov %r6, %r0
	call 7
	add %r6, %r0
	stw [%r10-4], 0
	lddw %r1, m
	mov %r2, %r10
	add %r2, -4
	call 1
	mov %r0, %r6
	exit
`, vm.Options{Tracer: rec, Clock: func() uint64 { return 1000 }, Rand: func() uint32 { return 7 }}, arr)
	if got := run(t, m, &vm.Mem{}); got != 1007 {
		t.Errorf("r0 = %d, want 1007 (clock 1000 + random 7)", got)
	}
	if rec.steps != 11 || len(rec.helpers) != 3 || rec.helpers[0] != asm.FnKtimeGetNs {
		t.Errorf("steps %d, helpers %v", rec.steps, rec.helpers)
	}
	if len(rec.lookups) != 1 || rec.lookups[0].Map != "m" || !bytes.Equal(rec.lookups[0].Key, u32(0)) || !bytes.Equal(rec.lookups[0].Value, u32(0)) {
		t.Errorf("lookups %+v", rec.lookups)
	}
}

func TestSnapshotDiff(t *testing.T) {
	spec := &ebpf.MapSpec{Name: "m", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}
	m := machine(t, ebpf.UnspecifiedProgram, updateProg, vm.Options{}, spec)
	if err := m.Map("m").Update(u32(1), u64(1), vm.UpdateAny); err != nil {
		t.Fatal(err)
	}
	before := m.Snapshot()
	run(t, m, updateMem(2, 5, vm.UpdateAny))
	run(t, m, updateMem(1, 9, vm.UpdateAny))
	d := vm.Diff(before, m.Snapshot())
	var got []string
	for _, c := range d {
		got = append(got, c.String())
	}
	want := []string{"m[01000000]: 0100000000000000 -> 0900000000000000", "m[02000000]: absent -> 0500000000000000"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTracePrintk(t *testing.T) {
	m := machine(t, ebpf.UnspecifiedProgram, `
	lddw %r1, 0x0a7825203d2078
	stxdw [%r10-8], %r1
	mov %r1, %r10
	add %r1, -8
	mov %r2, 8
	mov %r3, 255
	call 6
	exit
`, vm.Options{})
	res, err := m.Run("main", &vm.Mem{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Printk) != 1 || res.Printk[0] != "x = ff" {
		t.Errorf("printk %q", res.Printk)
	}
}
