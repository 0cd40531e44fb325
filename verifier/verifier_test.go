package verifier_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/verifier"
)

// tailChain builds n SchedCLS programs p0..p(n-1) where pi tail-calls
// slot i+1 of one program array, and slot k holds p(slots[k]).
func tailChain(n int, slots []int) *verifier.Collection {
	m := &verifier.Map{Name: "progs", Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: uint32(len(slots))}
	c := &verifier.Collection{Maps: []*verifier.Map{m}}
	for _, s := range slots {
		m.Slots = append(m.Slots, fmt.Sprintf("p%02d", s))
	}
	for i := range n {
		c.Programs = append(c.Programs, &verifier.Program{Name: fmt.Sprintf("p%02d", i), Type: ebpf.SchedCLS, Insns: asm.Instructions{
			asm.LoadMapPtr(asm.R2, 0).WithReference("progs"),
			asm.Mov.Imm(asm.R3, int32(i+1)),
			asm.FnTailCall.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		}})
	}
	return c
}

func TestTailCallDepth(t *testing.T) {
	identity := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	}
	// p0 -> p1 -> ... -> p33: 33 tail calls, the most the kernel performs.
	// p33's call goes to slot 34, which does not exist.
	if err := verifier.Verify(tailChain(34, identity(34))).Err(); err != nil {
		t.Errorf("a chain of 33 tail calls: %v", err)
	}
	// One more program makes 34.
	rep := verifier.Verify(tailChain(35, identity(35)))
	errs := rep.Errors()
	if len(errs) != 1 || errs[0].Program != "p00" || !strings.Contains(errs[0].Msg, "a chain of 34 tail calls") {
		t.Errorf("a chain of 34 tail calls: got %v", errs)
	}
	// p0 -> p1 -> p2 -> p1: a cycle.
	rep = verifier.Verify(tailChain(3, []int{0, 1, 2, 1}))
	errs = rep.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "cycle (p00 -> p01 -> p02 -> p01)") {
		t.Errorf("cycle: got %v", errs)
	}
	if errs[0].Insn != 3 {
		t.Errorf("cycle reported at instruction %d, want 3 (the call)", errs[0].Insn)
	}
}

// TestErrorPoints checks that an error names the instruction as the
// listing numbers it and the CUE position the listing shows for it.
func TestErrorPoints(t *testing.T) {
	arts, err := compiler.CompileDir("../examples/basic", compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	listing := string(arts[0].Files[compiler.ListingFile])
	var m *mutant
	for _, x := range realMutants(t) {
		if x.name == "real/packet_read_past_checked_range" {
			m = &x
		}
	}
	errs := verifier.Verify(m.coll).Errors()
	if len(errs) == 0 {
		t.Fatal("mutant accepted")
	}
	e := errs[0]
	if e.Source == "" || !strings.HasPrefix(e.Source, "../examples/basic/") {
		t.Errorf("error has no CUE position: %v", e)
	}
	// Find the program's section of the listing and the numbered line.
	sec := listing[strings.Index(listing, "; program "+e.Program+":"):]
	if i := strings.Index(sec[1:], "\n; program "); i >= 0 {
		sec = sec[:i+1]
	}
	prefix := fmt.Sprintf("%6d: ", e.Insn)
	found := false
	for _, l := range strings.Split(sec, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = true
			if !strings.HasSuffix(l, "; "+e.Source) {
				t.Errorf("listing line %q does not show the error's position %s", l, e.Source)
			}
			if !strings.Contains(l, "= *(u") {
				t.Errorf("listing line %q is not the packet load the error is about", l)
			}
		}
	}
	if !found {
		t.Errorf("no listing line numbered %d in program %s", e.Insn, e.Program)
	}
	want := fmt.Sprintf("%s: program %s, instruction %d (", e.Source, e.Program, e.Insn)
	if !strings.HasPrefix(e.Error(), want) {
		t.Errorf("error text %q does not start with %q", e.Error(), want)
	}
}

// TestEveryPathReported checks that independent problems on different
// paths are all reported, in instruction order, and the same on every run.
func TestEveryPathReported(t *testing.T) {
	c := one(ebpf.SchedCLS, cat(
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "b"),
		asm.LoadMem(asm.R0, asm.R10, -16, asm.DWord), // uninitialised stack
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("b"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.Word), // scalar dereference
		asm.Return(),
	)...)
	var first string
	for range 3 {
		errs := verifier.Verify(c).Errors()
		if len(errs) != 2 || errs[0].Insn != 2 || errs[1].Insn != 6 {
			t.Fatalf("want errors at instructions 2 and 6, got %v", errs)
		}
		if first == "" {
			first = errs.Error()
		} else if errs.Error() != first {
			t.Fatalf("errors differ between runs:\n%s\n%s", first, errs.Error())
		}
	}
}

func TestRefusedConstructs(t *testing.T) {
	for _, c := range []struct {
		name  string
		insns asm.Instructions
		want  string
	}{
		{"bpf-to-bpf call", asm.Instructions{
			asm.Call.Label("f"), asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("f"), asm.Return(),
		}, "bpf-to-bpf calls are not supported"},
		{"legacy packet load", asm.Instructions{asm.LoadAbs(12, asm.Half), asm.Return()}, "LD_ABS"},
		{"unknown helper", asm.Instructions{asm.FnTracePrintk.Call(), asm.Return()}, "not in ebpfc's verifier's helper table"},
		{"unknown map", asm.Instructions{asm.LoadMapPtr(asm.R1, 0).WithReference("nope"), asm.Mov.Imm(asm.R0, 0), asm.Return()}, `"nope"`},
	} {
		errs := verifier.Verify(one(ebpf.SchedCLS, c.insns...)).Errors()
		if len(errs) == 0 || !strings.Contains(errs.Error(), c.want) {
			t.Errorf("%s: want an error mentioning %q, got %v", c.name, c.want, errs)
		}
	}
}

// TestEstimateCounts pins the exploration on small programs whose kernel
// count is known: straight-line code counts each instruction once, and a
// diamond counts the shared tail once per path until a checkpoint exists.
func TestEstimateCounts(t *testing.T) {
	straight := one(ebpf.SchedCLS, asm.Mov.Imm(asm.R1, 1), asm.Mov.Imm(asm.R2, 2), asm.Mov.Imm(asm.R0, 0), asm.Return())
	if got := verifier.Verify(straight).Programs[0].Processed; got != 4 {
		t.Errorf("straight-line: processed %d, want 4", got)
	}
	// A branch on an unknown value explores both sides: 2 + 2 + 2.
	diamond := one(ebpf.SchedCLS,
		asm.LoadMem(asm.R0, asm.R1, 0, asm.Word),
		asm.JEq.Imm(asm.R0, 1, "x"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("x"),
		asm.Return(),
	)
	if got := verifier.Verify(diamond).Programs[0].Processed; got != 5 {
		t.Errorf("diamond: processed %d, want 5", got)
	}
	// A branch decided by a known value explores one side.
	known := one(ebpf.SchedCLS,
		asm.Mov.Imm(asm.R0, 1),
		asm.JEq.Imm(asm.R0, 1, "x"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("x"),
		asm.Return(),
	)
	if got := verifier.Verify(known).Programs[0].Processed; got != 4 {
		t.Errorf("known branch: processed %d, want 4", got)
	}
}
