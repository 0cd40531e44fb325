// Package verifier is ebpfc's static verifier: an abstract interpreter
// over cilium/ebpf instructions that checks, before any kernel sees a
// program, what the kernel's verifier checks for the program types ebpfc
// emits (XDP, tc and cgroup socket-address hooks).
//
// It checks the control-flow graph (jumps in range, ldimm64 pairs, no
// unreachable instructions, no back edges, no fall-through off the end),
// register initialisation and types (scalars with signed, unsigned and
// 32-bit ranges and known bits; context, packet, packet end, packet
// metadata, map, map value or null, stack and helper memory pointers),
// context accesses per program type, packet bounds checks, null checks,
// stack bounds and initialisation, helper availability and argument
// types, reference release (ring buffer records), return values and the
// depth of tail-call chains. It explores paths as the kernel does, with
// state pruning at the same points, and reports its count of processed
// instructions as an estimate of the kernel's.
//
// Verify never touches the kernel and is deterministic. Its errors carry
// the instruction's index (its number in the listing), its text and the
// CUE position it came from.
package verifier

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Program is one program to verify.
type Program struct {
	Name string
	Type ebpf.ProgramType
	// AttachType selects the context fields available to cgroup socket
	// address programs (user_ip4 only for IPv4 hooks, and so on).
	AttachType ebpf.AttachType
	// Insns reference maps by name (Instruction.Reference) and may jump by
	// symbol or by offset.
	Insns asm.Instructions
}

// Map is a map the programs reference by name.
type Map struct {
	Name       string
	Type       ebpf.MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	// Slots lists, for a program array, the program at each index ("" for
	// an empty slot); tail calls with a constant index are followed
	// through it.
	Slots []string
}

// Collection is the programs and maps of one object.
type Collection struct {
	Programs []*Program
	Maps     []*Map
}

// MaxTailCallChain is the longest chain of tail calls the kernel performs
// (MAX_TAIL_CALL_CNT); a longer constant chain would stop part way at run
// time, so it is an error.
const MaxTailCallChain = 33

// complexityLimit is the kernel's BPF_COMPLEXITY_LIMIT_INSNS.
const complexityLimit = 1_000_000

// Result is what the verifier found for one program.
type Result struct {
	Name string
	Type ebpf.ProgramType
	// Insns is the program's length in 8-byte instruction slots.
	Insns int
	// Processed estimates the kernel verifier's processed-instruction
	// count: instructions visited over every explored path.
	Processed int
	// States is the number of checkpoints stored for pruning.
	States int
	Errors []*Error

	tailCalls []tailCall
}

// OK reports whether the program passed.
func (r *Result) OK() bool { return len(r.Errors) == 0 }

// Report is the verifier's verdict on a collection.
type Report struct {
	Programs []*Result // in collection order
}

// Errors returns every error of every program, in program order.
func (r *Report) Errors() Errors {
	var out Errors
	for _, p := range r.Programs {
		out = append(out, p.Errors...)
	}
	return out
}

// Err returns the errors as an error, or nil when every program passed.
func (r *Report) Err() error {
	if errs := r.Errors(); len(errs) > 0 {
		return errs
	}
	return nil
}

// Error is a problem in one instruction of one program.
type Error struct {
	Program string
	// Insn is the instruction's index in 8-byte slots, as the listing
	// (datapath.s) and the kernel's verifier log number instructions.
	Insn int
	// Text is the instruction in cilium/ebpf's syntax.
	Text string
	// Source is the CUE position the instruction came from, or "".
	Source string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" && e.Source != "-" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "program %s, instruction %d", e.Program, e.Insn)
	if e.Text != "" {
		fmt.Fprintf(&b, " (%s)", e.Text)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of verifier errors.
type Errors []*Error

func (l Errors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Verify checks every program of c.
func Verify(c *Collection) *Report {
	maps := make(map[string]int, len(c.Maps))
	for i, m := range c.Maps {
		maps[m.Name] = i
	}
	rep := &Report{}
	for _, p := range c.Programs {
		rep.Programs = append(rep.Programs, verifyProgram(c, maps, p))
	}
	checkTailCalls(c, maps, rep)
	for _, r := range rep.Programs {
		sortErrors(r.Errors)
	}
	return rep
}

func sortErrors(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Insn, b.Insn), cmp.Compare(a.Msg, b.Msg))
	})
}

// FromSpec describes a collection spec (as read from an ELF object) for
// Verify. Program arrays' slots come from the spec's map contents.
func FromSpec(spec *ebpf.CollectionSpec) (*Collection, error) {
	c := &Collection{}
	names := make([]string, 0, len(spec.Maps))
	for n := range spec.Maps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ms := spec.Maps[n]
		m := &Map{Name: n, Type: ms.Type, KeySize: ms.KeySize, ValueSize: ms.ValueSize, MaxEntries: ms.MaxEntries, Flags: ms.Flags}
		if ms.Type == ebpf.ProgramArray {
			for _, kv := range ms.Contents {
				k, ok := toIndex(kv.Key)
				if !ok {
					return nil, fmt.Errorf("map %s: program array key %v is not an integer", n, kv.Key)
				}
				var prog string
				switch v := kv.Value.(type) {
				case string:
					prog = v
				case *ebpf.ProgramSpec:
					prog = v.Name
				default:
					return nil, fmt.Errorf("map %s: slot %d holds %T, not a program name", n, k, kv.Value)
				}
				if k >= uint64(ms.MaxEntries) {
					return nil, fmt.Errorf("map %s: slot %d is beyond max_entries %d", n, k, ms.MaxEntries)
				}
				for uint64(len(m.Slots)) <= k {
					m.Slots = append(m.Slots, "")
				}
				m.Slots[k] = prog
			}
		}
		c.Maps = append(c.Maps, m)
	}
	pnames := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		pnames = append(pnames, n)
	}
	slices.Sort(pnames)
	for _, n := range pnames {
		ps := spec.Programs[n]
		c.Programs = append(c.Programs, &Program{Name: n, Type: ps.Type, AttachType: ps.AttachType, Insns: ps.Instructions})
	}
	return c, nil
}

func toIndex(k any) (uint64, bool) {
	switch v := k.(type) {
	case uint32:
		return uint64(v), true
	case int:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	case int32:
		return uint64(v), v >= 0
	}
	return 0, false
}

// Program returns the result for the named program, or nil.
func (r *Report) Program(name string) *Result {
	for _, p := range r.Programs {
		if p.Name == name {
			return p
		}
	}
	return nil
}
