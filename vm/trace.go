package vm

import "github.com/cilium/ebpf/asm"

// Tracer sees what a run does. Events are passed by pointer and valid only
// during the call; copy what you keep.
type Tracer interface {
	// Step is called before each instruction executes.
	Step(s *Step)
	// Helper is called after each helper call with its arguments and result.
	Helper(h *HelperEvent)
	// MapLookup is called for each bpf_map_lookup_elem.
	MapLookup(l *MapLookup)
	// TailCall is called for each bpf_tail_call, taken or not.
	TailCall(t *TailCall)
}

// Step is one instruction about to execute.
type Step struct {
	Program string
	Index   int // in the program's asm.Instructions
	Insn    *asm.Instruction
	Regs    *[11]uint64 // r0-r10 before the instruction
	Frame   int         // bpf-to-bpf call depth
}

// HelperEvent is one helper call.
type HelperEvent struct {
	Program string
	Index   int
	Helper  asm.BuiltinFunc
	Args    [5]uint64
	Ret     uint64
}

// MapLookup is one map lookup; Value is nil when the key was not found.
type MapLookup struct {
	Program string
	Index   int
	Map     string
	Key     []byte
	Value   []byte
}

// TailCall is one tail call; Target is empty when it failed (empty slot,
// index out of range, or the tail-call limit reached).
type TailCall struct {
	Program string
	Index   int
	Map     string
	Slot    uint32
	Target  string
}

// NopTracer ignores every event; embed it to implement only some methods.
type NopTracer struct{}

func (NopTracer) Step(*Step)           {}
func (NopTracer) Helper(*HelperEvent)  {}
func (NopTracer) MapLookup(*MapLookup) {}
func (NopTracer) TailCall(*TailCall)   {}
