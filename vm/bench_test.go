package vm_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/tools/txtar"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
)

// benchCase is the golden policy case the packet benchmarks run: one
// endpoint whose ingress policy allows TCP/80 from a CIDR with an except.
const benchCase = "../golden/policy_cidr_port.txtar"

// benchPackets are the allowed and the denied packet, as in the kernel's
// BenchmarkPacket (runtime/bench_test.go).
var benchPackets = []struct{ name, line string }{
	{"allow", "to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn => pass"},
	{"deny", "to_default_web tcp 8.8.8.8:40000 > 10.0.1.5:80 syn => drop"},
}

// compileGolden compiles a golden case and returns its first node.
func compileGolden(tb testing.TB, path string) *compiler.Artifacts {
	tb.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	fs := fstest.MapFS{}
	var names []string
	for _, f := range ar.Files {
		if strings.HasSuffix(f.Name, ".cue") || strings.HasSuffix(f.Name, ".json") {
			fs[f.Name] = &fstest.MapFile{Data: f.Data}
			names = append(names, f.Name)
		}
	}
	cfg, err := load.LoadFS(fs, names)
	if err != nil {
		tb.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return arts[0]
}

func benchPacket(tb testing.TB, line string) (*packettest.Case, []byte) {
	tb.Helper()
	c, err := packettest.Parse(line)
	if err != nil {
		tb.Fatal(err)
	}
	pkt, err := c.Build()
	if err != nil {
		tb.Fatal(err)
	}
	return c, pkt
}

// BenchmarkVMPacket runs the golden policy program (the entry program and
// the IPv4 program it tail-calls) in the interpreter. ns/op is the time per
// packet; ns/insn divides it by the instructions executed.
func BenchmarkVMPacket(b *testing.B) {
	a := compileGolden(b, benchCase)
	va, err := artifact.Parse(a.Node, a.Files)
	if err != nil {
		b.Fatal(err)
	}
	m, err := va.Machine(vm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bp := range benchPackets {
		c, pkt := benchPacket(b, bp.line)
		want := uint64(0)
		if !c.Pass {
			want = 2
		}
		b.Run(bp.name, func(b *testing.B) {
			insns := 0
			start := time.Now()
			for b.Loop() {
				res, err := m.Run(c.Program, vm.NewSKB(pkt))
				if err != nil {
					b.Fatal(err)
				}
				if res.Return != want {
					b.Fatalf("verdict %d, want %d", res.Return, want)
				}
				insns += res.Instructions
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(insns), "ns/insn")
			b.ReportMetric(float64(insns)/float64(b.N), "insns/packet")
		})
	}
}

// BenchmarkVMConformancePrime runs the conformance suite's prime test, a
// loop of ALU and jump instructions, for a per-instruction cost without
// helpers and maps.
func BenchmarkVMConformancePrime(b *testing.B) {
	prog := conformanceProgram(b, conformanceDir+"/tests/prime.data")
	m, err := vm.NewMachine(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{
		"prime": {Name: "prime", Instructions: prog},
	}}, vm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	insns := 0
	start := time.Now()
	for b.Loop() {
		res, err := m.Run("prime", &vm.Mem{})
		if err != nil {
			b.Fatal(err)
		}
		insns += res.Instructions
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(insns), "ns/insn")
	b.ReportMetric(float64(insns)/float64(b.N), "insns/op")
}
