package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Options configure a Machine. The zero value is usable: one CPU,
// a deterministic clock and random source, no tracer.
type Options struct {
	// NumCPU is the number of CPUs per-CPU maps hold values for (default 1).
	NumCPU int
	// CPU is the CPU runs execute on (0 ≤ CPU < NumCPU); see SetCPU.
	CPU int
	// Clock is what bpf_ktime_get_ns returns. The default starts at one
	// second and advances by one microsecond per call.
	Clock func() uint64
	// Rand is what bpf_get_prandom_u32 returns. The default is a PCG
	// generator seeded with Seed.
	Rand func() uint32
	Seed uint64
	// Tracer, if set, sees every instruction, helper call, map lookup and
	// tail call.
	Tracer Tracer
	// MaxInstructions bounds one run (default 10,000,000); a run that
	// executes more fails.
	MaxInstructions int
	// Helpers adds helpers to the built-in table or replaces built-in ones.
	Helpers map[asm.BuiltinFunc]HelperFunc
}

// Machine holds a collection's maps and programs and runs the programs.
// It is not safe for concurrent use.
type Machine struct {
	opts    Options
	maps    []*Map // sorted by name
	byName  map[string]*Map
	progs   map[string]*program
	helpers map[asm.BuiltinFunc]HelperFunc
	run     *run
}

const defaultMaxInstructions = 10_000_000

// NewMachine builds the maps of spec (with their Contents; program arrays
// are filled with the programs their contents name) and decodes, links and
// validates every program. Errors name the map or the program and
// instruction.
func NewMachine(spec *ebpf.CollectionSpec, opts Options) (*Machine, error) {
	if opts.NumCPU <= 0 {
		opts.NumCPU = 1
	}
	if opts.CPU < 0 || opts.CPU >= opts.NumCPU {
		return nil, fmt.Errorf("CPU %d is not one of the %d CPUs", opts.CPU, opts.NumCPU)
	}
	if opts.Clock == nil {
		now := uint64(1_000_000_000)
		opts.Clock = func() uint64 { now += 1000; return now }
	}
	if opts.Rand == nil {
		src := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
		opts.Rand = src.Uint32
	}
	if opts.MaxInstructions <= 0 {
		opts.MaxInstructions = defaultMaxInstructions
	}
	mc := &Machine{opts: opts, byName: map[string]*Map{}, progs: map[string]*program{}, helpers: map[asm.BuiltinFunc]HelperFunc{}}
	for fn, h := range builtinHelpers {
		mc.helpers[fn] = h
	}
	for fn, h := range opts.Helpers {
		mc.helpers[fn] = h
	}
	var mapNames []string
	for name := range spec.Maps {
		mapNames = append(mapNames, name)
	}
	slices.Sort(mapNames)
	for _, name := range mapNames {
		ms := spec.Maps[name].Copy()
		ms.Name = name
		m, err := newMap(ms, opts.NumCPU)
		if err != nil {
			return nil, err
		}
		mc.maps = append(mc.maps, m)
		mc.byName[name] = m
	}
	var progNames []string
	for name := range spec.Programs {
		progNames = append(progNames, name)
	}
	slices.Sort(progNames)
	for _, name := range progNames {
		ps := spec.Programs[name]
		p, err := decode(name, ps.Type, ps.Instructions, mc.byName)
		if err != nil {
			return nil, err
		}
		for _, in := range p.code {
			if in.op == opCall {
				if _, ok := mc.helpers[in.helper]; !ok {
					return nil, &LoadError{Program: name, Index: in.orig, Insn: fmt.Sprint(p.insns[in.orig]),
						Msg: fmt.Sprintf("helper %s is not supported by the interpreter", in.helper)}
				}
			}
		}
		mc.progs[name] = p
	}
	for _, name := range mapNames {
		m := mc.byName[name]
		for i, kv := range spec.Maps[name].Contents {
			if err := mc.applyContent(m, kv); err != nil {
				return nil, fmt.Errorf("map %s: contents entry %d: %w", name, i, err)
			}
		}
	}
	mc.run = newRun(mc)
	return mc, nil
}

// applyContent sets one MapSpec.Contents entry, as cilium/ebpf does when it
// creates the map: program arrays name programs, other maps give bytes or
// fixed-size values.
func (mc *Machine) applyContent(m *Map, kv ebpf.MapKV) error {
	key, err := encodeValue(kv.Key, int(m.keySize))
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if _, ok := m.impl.(*progArray); ok {
		name, ok := kv.Value.(string)
		if !ok {
			return fmt.Errorf("program array value %v is not a program name", kv.Value)
		}
		if mc.progs[name] == nil {
			return fmt.Errorf("program array slot names program %s, which the collection does not have", name)
		}
		return m.Update(key, []byte(name), UpdateAny)
	}
	val, err := encodeValue(kv.Value, -1)
	if err != nil {
		return fmt.Errorf("value: %w", err)
	}
	return m.Update(key, val, UpdateAny)
}

func encodeValue(v any, size int) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	if size > 0 && reflect.ValueOf(v).Kind() == reflect.Int {
		// Untyped integer constants: use the declared key size.
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, uint64(reflect.ValueOf(v).Int()))
		return b[:size], nil
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		return nil, fmt.Errorf("cannot encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// Map returns the map called name, or nil.
func (mc *Machine) Map(name string) *Map { return mc.byName[name] }

// Maps returns every map, sorted by name.
func (mc *Machine) Maps() []*Map { return slices.Clone(mc.maps) }

// Programs returns the names of the programs, sorted.
func (mc *Machine) Programs() []string {
	var names []string
	for n := range mc.progs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ProgramType returns the type of the program called name.
func (mc *Machine) ProgramType(name string) (ebpf.ProgramType, bool) {
	p := mc.progs[name]
	if p == nil {
		return 0, false
	}
	return p.typ, true
}

// SetCPU sets the CPU later runs execute on.
func (mc *Machine) SetCPU(cpu int) error {
	if cpu < 0 || cpu >= mc.opts.NumCPU {
		return fmt.Errorf("CPU %d is not one of the %d CPUs", cpu, mc.opts.NumCPU)
	}
	mc.opts.CPU = cpu
	return nil
}

// SetTracer sets (or with nil removes) the tracer of later runs.
func (mc *Machine) SetTracer(t Tracer) { mc.opts.Tracer = t }

// Redirect is what bpf_redirect asked for.
type Redirect struct {
	Ifindex uint32
	Flags   uint64
}

// Result is the outcome of one run.
type Result struct {
	// Return is r0 at the final exit.
	Return uint64
	// Packet is the packet after the program's writes and head
	// adjustments (nil for contexts without one).
	Packet []byte
	// TailCalls lists the programs entered by tail calls, in order.
	TailCalls []string
	// Redirect is set when the program called bpf_redirect.
	Redirect *Redirect
	// Printk holds the lines bpf_trace_printk wrote.
	Printk []string
	// Instructions is the number of instructions executed.
	Instructions int
}

// Fault is a run that stopped on an error: a memory access outside its
// region, a bad helper argument, too many instructions.
type Fault struct {
	Program string
	Index   int    // instruction index in the program's asm.Instructions, -1 for the run as a whole
	Insn    string // the instruction as cilium/ebpf prints it
	Err     error
}

func (f *Fault) Error() string {
	if f.Index < 0 {
		return fmt.Sprintf("program %s: %v", f.Program, f.Err)
	}
	return fmt.Sprintf("program %s: instruction %d (%s): %v", f.Program, f.Index, f.Insn, f.Err)
}

func (f *Fault) Unwrap() error { return f.Err }

// Run runs the program called prog on ctx and returns its result. Map
// changes persist in the Machine; writable context fields are copied back
// into ctx.
func (mc *Machine) Run(prog string, ctx Context) (*Result, error) {
	p := mc.progs[prog]
	if p == nil {
		return nil, fmt.Errorf("no program %q (have %v)", prog, mc.Programs())
	}
	if ctx == nil {
		return nil, fmt.Errorf("program %s: no context", prog)
	}
	if err := contextFits(p.typ, ctx); err != nil {
		return nil, fmt.Errorf("program %s: %w", prog, err)
	}
	return mc.run.start(p, ctx)
}

// RunMem runs a lone program the way the conformance suite does: r1 points
// to mem (which the program may change), r2 holds its length, and the
// result is r0.
func RunMem(insns asm.Instructions, mem []byte, opts Options) (*Result, error) {
	spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{
		"main": {Name: "main", Instructions: insns},
	}}
	mc, err := NewMachine(spec, opts)
	if err != nil {
		return nil, err
	}
	return mc.Run("main", &Mem{Data: mem})
}
