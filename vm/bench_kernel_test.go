//go:build linux

package vm_test

import (
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// kernelRepeat is how many times BPF_PROG_TEST_RUN runs the program per
// call; the kernel reports the mean time per run.
const kernelRepeat = 100000

// BenchmarkKernelPacket runs the same program and packets as
// BenchmarkVMPacket in the kernel with BPF_PROG_TEST_RUN, so that the two
// can be compared: ns/packet is the kernel's mean per run (ns/op is the
// time of one whole call of kernelRepeat runs; ignore it).
func BenchmarkKernelPacket(b *testing.B) {
	testenv.RequireKernel(b)
	a := compileGolden(b, benchCase)
	ra, err := runtime.ParseArtifacts(a.Node, a.Files)
	if err != nil {
		b.Fatal(err)
	}
	dp, err := runtime.Load(ra)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(dp.Close)
	for _, bp := range benchPackets {
		c, pkt := benchPacket(b, bp.line)
		prog := dp.Collection.Programs[c.Program]
		if prog == nil {
			b.Fatalf("no program %s", c.Program)
		}
		want := uint32(0)
		if !c.Pass {
			want = 2
		}
		b.Run(bp.name, func(b *testing.B) {
			var total time.Duration
			runs := 0
			for b.Loop() {
				ret, d, err := prog.Benchmark(pkt, kernelRepeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ret != want {
					b.Fatalf("verdict %d, want %d", ret, want)
				}
				total += d
				runs++
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(runs), "ns/packet")
		})
	}
}
