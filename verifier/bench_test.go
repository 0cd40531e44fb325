package verifier_test

import (
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/verifier"
)

// largestProgram returns, from every program the golden cases and
// examples generate, the one with the most instructions, alone in a
// collection with its node's maps.
func largestProgram(b *testing.B) (*verifier.Collection, string) {
	var best *verifier.Collection
	var name string
	size := -1
	for _, g := range compileCorpus(b) {
		c := compiler.VerifierCollection(g.art.Object)
		for _, p := range c.Programs {
			n := 0
			for _, in := range p.Insns {
				n += int(in.Size() / 8)
			}
			if n > size {
				size, name = n, g.name+"/"+p.Name
				best = &verifier.Collection{Programs: []*verifier.Program{p}, Maps: c.Maps}
			}
		}
	}
	for _, m := range best.Maps {
		m.Slots = nil
	}
	return best, name
}

// BenchmarkVerifyLargestProgram verifies the largest generated program.
func BenchmarkVerifyLargestProgram(b *testing.B) {
	c, name := largestProgram(b)
	rep := verifier.Verify(c)
	if err := rep.Err(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d insns, %d processed, %d states", name, rep.Programs[0].Insns, rep.Programs[0].Processed, rep.Programs[0].States)
	b.ReportAllocs()
	for b.Loop() {
		verifier.Verify(c)
	}
}

// BenchmarkVerifyNode verifies every program of examples/basic's node-a,
// as the compiler does for each node.
func BenchmarkVerifyNode(b *testing.B) {
	arts, err := compiler.CompileDir("../examples/basic", compiler.Options{Node: "node-a"})
	if err != nil {
		b.Fatal(err)
	}
	c := compiler.VerifierCollection(arts[0].Object)
	b.Logf("%d programs", len(c.Programs))
	b.ReportAllocs()
	for b.Loop() {
		verifier.Verify(c)
	}
}

// BenchmarkCompileNode compiles examples/basic's node-a from the loaded
// configuration, verification included, to compare with BenchmarkVerifyNode.
func BenchmarkCompileNode(b *testing.B) {
	cfg, err := load.Load("../examples/basic")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compiler.Compile(cfg, compiler.Options{Node: "node-a"}); err != nil {
			b.Fatal(err)
		}
	}
}
