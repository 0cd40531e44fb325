package compiler_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
	"github.com/ebpfc/ebpfc/internal/randpolicy"
)

// sameAsPerProgram compiles cfg with shape templates and with
// Options.PerProgram and requires the same artifacts, byte for byte, or
// the same error.
func sameAsPerProgram(t *testing.T, cfg *model.Config) {
	t.Helper()
	shaped, err1 := compiler.Compile(cfg, compiler.Options{CheckEveryPass: true})
	alone, err2 := compiler.Compile(cfg, compiler.Options{CheckEveryPass: true, PerProgram: true})
	if fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Fatalf("templates: %v\nper program: %v", err1, err2)
	}
	if len(shaped) != len(alone) {
		t.Fatalf("%d nodes with templates, %d per program", len(shaped), len(alone))
	}
	for i, a := range alone {
		if len(shaped[i].Files) != len(a.Files) {
			t.Errorf("node %s: %d files with templates, %d per program", a.Node, len(shaped[i].Files), len(a.Files))
		}
		for name, want := range a.Files {
			if got := shaped[i].Files[name]; !bytes.Equal(got, want) {
				t.Errorf("node %s: %s differs from the per-program compile (%d and %d bytes)", a.Node, name, len(got), len(want))
			}
		}
	}
}

// TestShapeTemplatesGolden compiles every golden input both ways.
func TestShapeTemplatesGolden(t *testing.T) {
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := load.LoadFS(c.inputs, c.names)
			if err != nil {
				return // an input error: no programs
			}
			sameAsPerProgram(t, cfg)
		})
	}
}

// TestShapeTemplatesRandom compiles random configurations (ingress and
// egress, allow and deny, CIDRs, entities, named ports, audit) both ways,
// and checks that the templates did the work: most programs are stamped,
// and the egress entry programs, whose source-address check puts the
// endpoint's address in a branch, are verified on their own.
func TestShapeTemplatesRandom(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	var total compiler.ShapeCounts
	for seed := range seeds {
		rc := randpolicy.Generate(uint64(seed))
		cfg, err := randpolicy.Load(rc.Files())
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			sameAsPerProgram(t, cfg)
			for _, n := range cfg.Nodes {
				c, err := compiler.CountShapes(cfg, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.NoTemplate) > 0 {
					t.Errorf("node %s: shapes without a template: %v", n.Name, c.NoTemplate)
				}
				total.Programs += c.Programs
				total.Shapes += c.Shapes
				total.Stamped += c.Stamped
				total.Alone += c.Alone
				total.Covered += c.Covered
			}
		})
	}
	t.Logf("%+v", total)
	if total.Stamped == 0 || total.Alone != 0 {
		t.Errorf("%d programs stamped, %d of a templated shape compiled alone; want some stamped and none alone", total.Stamped, total.Alone)
	}
	if total.Covered == total.Stamped {
		t.Errorf("every stamped program was covered by its template's verification; want the egress entry programs verified on their own")
	}
}

// TestShapeTemplatesBenchNode checks the benchmark's node: few shapes,
// every other program stamped and covered by its template's verification,
// and the same bytes as the per-program compile.
func TestShapeTemplatesBenchNode(t *testing.T) {
	cfg := benchcfg.Node(60, 12)
	sameAsPerProgram(t, cfg)
	c, err := compiler.CountShapes(cfg, cfg.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", c)
	if c.Shapes > 12 || c.Stamped != c.Programs-c.Shapes || c.Covered != c.Stamped || len(c.NoTemplate) > 0 {
		t.Errorf("%+v: want at most 12 shapes and every other program stamped and covered", c)
	}
}

// TestVerifiedBySite checks which instruction constants the template's
// static verification covers.
func TestVerifiedBySite(t *testing.T) {
	ringbuf := asm.Instructions{
		asm.StoreImm(asm.RFP, -72, 7, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.FnRingbufOutput.Call(),
	}
	lookup := asm.Instructions{
		asm.StoreImm(asm.RFP, -72, 7, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("stats"),
		asm.FnMapLookupElem.Call(),
	}
	for _, tc := range []struct {
		name  string
		insns asm.Instructions
		k     int
		want  bool
	}{
		{"tail call slot", asm.Instructions{asm.LoadMapPtr(asm.R2, 0).WithReference("progs"), asm.Mov.Imm(asm.R3, 9), asm.FnTailCall.Call()}, 1, true},
		{"slot not in r3", asm.Instructions{asm.Mov.Imm(asm.R4, 9), asm.FnTailCall.Call()}, 0, false},
		{"context store through r5", asm.Instructions{asm.Mov.Imm(asm.R5, 9), asm.StoreMem(asm.R1, 60, asm.R5, asm.Word)}, 0, true},
		{"atomic add through r5", asm.Instructions{asm.Mov.Imm(asm.R5, 9), asm.AddAtomic.Mem(asm.R0, asm.R5, asm.DWord, 0)}, 0, true},
		{"constant kept in an allocated register", asm.Instructions{asm.Mov.Imm(asm.R6, 9), asm.StoreMem(asm.R1, 60, asm.R6, asm.Word)}, 0, false},
		{"ring buffer record field", ringbuf, 0, true},
		{"map key field", lookup, 0, false},
		{"record field with a jump before the call", asm.Instructions{asm.StoreImm(asm.RFP, -72, 7, asm.Word), asm.Ja.Label("x"), asm.FnRingbufOutput.Call()}, 0, false},
		{"byte field", asm.Instructions{asm.StoreImm(asm.RFP, -72, 7, asm.Byte), asm.FnRingbufOutput.Call()}, 0, false},
		{"branch immediate", asm.Instructions{asm.JEq.Imm(asm.R1, 9, "x")}, 0, false},
		{"64-bit constant", asm.Instructions{asm.LoadImm(asm.R5, 1<<40, asm.DWord), asm.StoreMem(asm.R1, 60, asm.R5, asm.Word)}, 0, false},
	} {
		if got := compiler.VerifiedBySite(tc.insns, tc.k); got != tc.want {
			t.Errorf("%s: verifiedBySite = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTailChainsBounded checks the whole-node check of tail-call chains
// that stands in for the verifier's when programs are stamped.
func TestTailChainsBounded(t *testing.T) {
	chain := func(n int) [][]int {
		e := make([][]int, n+1)
		for i := range n {
			e[i] = []int{i + 1}
		}
		return e
	}
	for _, tc := range []struct {
		name  string
		edges [][]int
		want  bool
	}{
		{"no calls", [][]int{nil, nil}, true},
		{"entry to policy programs", [][]int{{1, 2}, nil, nil}, true},
		{"33 calls", chain(33), true},
		{"34 calls", chain(34), false},
		{"self call", [][]int{{0}}, false},
		{"cycle", [][]int{{1}, {2}, {0}}, false},
	} {
		if got := compiler.TailChainsBounded(tc.edges); got != tc.want {
			t.Errorf("%s: tailChainsBounded = %v, want %v", tc.name, got, tc.want)
		}
	}
}
