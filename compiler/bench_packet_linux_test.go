package compiler_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// packetRepeat is how many times the kernel runs a program per
// BPF_PROG_TEST_RUN call; it reports the mean time per run.
const packetRepeat = 100000

// packetSeries are the two series of docs/benchmarks.md: the endpoint's
// policy names more peer identities (one rule each), or the ipcache holds
// more entries.
var packetSeries = []struct {
	name  string
	sizes []int
	build func(int) *model.Config
	// cookie is the rule the allowed packet must be counted against.
	cookie func(int) int
}{
	{"identities", []int{10, 1000, 100000}, benchcfg.PolicyIdentities, func(n int) int { return n }},
	{"ipcache", []int{10, 10000, 100000}, benchcfg.IPCache, func(int) int { return 1 }},
}

// loadedConfig is one compiled and loaded packet-series configuration.
type loadedConfig struct {
	dp      *runtime.Datapath
	reasons []string
	compile time.Duration
	load    time.Duration
	entries map[string]int // initial entries by map
}

func loadConfig(tb testing.TB, cfg *model.Config) *loadedConfig {
	tb.Helper()
	start := time.Now()
	arts, err := compiler.Compile(cfg, compiler.Options{Node: benchcfg.NodeName})
	if err != nil {
		tb.Fatal(err)
	}
	lc := &loadedConfig{compile: time.Since(start), reasons: arts[0].Lowered.DropReasons, entries: map[string]int{}}
	for _, m := range arts[0].Manifest.Maps {
		lc.entries[m.Name] = m.Entries
	}
	ra, err := runtime.ParseArtifacts(arts[0].Node, arts[0].Files)
	if err != nil {
		tb.Fatal(err)
	}
	start = time.Now()
	lc.dp, err = runtime.Load(ra)
	if err != nil {
		tb.Fatal(err)
	}
	lc.load = time.Since(start)
	tb.Cleanup(lc.dp.Close)
	return lc
}

// maxProcessed returns the largest verifier processed-instruction count
// among dp's programs and the program that has it; it fails when the
// kernel's log did not give one.
func maxProcessed(tb testing.TB, dp *runtime.Datapath) (int, string) {
	tb.Helper()
	best, name := -1, ""
	for _, st := range dp.Stats {
		if st.Processed == 0 {
			tb.Fatalf("program %s: no processed-instruction count in the verifier log", st.Name)
		}
		if st.Processed > best {
			best, name = st.Processed, st.Name
		}
	}
	return best, name
}

func trivialProgram(tb testing.TB, typ ebpf.ProgramType, ret int32) *ebpf.Program {
	tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         typ,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog
}

// runPackets measures prog on pkt: packetRepeat runs per iteration, the
// verdict checked every time. It returns the kernel's mean ns per run over
// the iterations.
func runPackets(b *testing.B, prog *ebpf.Program, pkt []byte, want uint32) float64 {
	var total time.Duration
	runs := 0
	for b.Loop() {
		ret, d, err := prog.Benchmark(pkt, packetRepeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		total += d
		runs++
	}
	ns := float64(total.Nanoseconds()) / float64(runs)
	b.ReportMetric(ns, "ns/packet")
	return ns
}

// BenchmarkPolicyPacket measures the policy verdict per packet through the
// tc programs of default/web (its ingress entry program, which tail-calls
// its IPv4 policy program) with BPF_PROG_TEST_RUN, for an allowed and a
// denied TCP SYN, in the two series of benchcfg: identities=N (the policy
// names N peer identities, one rule each) and ipcache=N (N remote
// endpoints in the ipcache, one policy rule). Each configuration is a
// sub-benchmark, so -bench can pick sizes.
//
// The kernel runs the same packet packetRepeat times per call and maps
// keep their state, so the allowed SYN is a new connection only on the
// first run and an established one after it: conntrack hit, policy judged
// again, counted, passed. The denied SYN never gets a conntrack entry: it
// is a new connection on every run (two conntrack misses, the policy
// decision, a verdict and a drop event on the ring buffer — full after a
// few thousand runs, as nothing reads it — and the drop counters).
//
// The references run in the same benchmark: floor-tc (a tc program that
// returns TC_ACT_OK), floor-xdp (XDP_PASS), and conntrack-only
// (benchcfg.ConntrackOnly: the same allowed packet through the same
// programs with the ingress direction open, so it takes the established
// path without the ipcache and policy lookups). Each configuration also
// reports the largest verifier processed-instruction count of its
// programs. A summary at the end logs ns above the tc floor, ns above
// conntrack-only (the policy decision) and the growth from the smallest to
// the largest size of each series.
func BenchmarkPolicyPacket(b *testing.B) {
	testenv.RequireKernel(b)
	build := func(line string) ([]byte, *packettest.Case) {
		c, err := packettest.Parse(line)
		if err != nil {
			b.Fatal(err)
		}
		pkt, err := c.Build()
		if err != nil {
			b.Fatal(err)
		}
		return pkt, c
	}
	allowLine := fmt.Sprintf("%s tcp %s:40000 > %s:%d syn => pass", benchcfg.TargetProgram, benchcfg.AllowedPeer, benchcfg.TargetAddr, benchcfg.TargetPort)
	denyLine := fmt.Sprintf("%s tcp %s:40000 > %s:%d syn => drop reason=policy-denied", benchcfg.TargetProgram, benchcfg.DeniedPeer, benchcfg.TargetAddr, benchcfg.TargetPort)
	allowPkt, _ := build(allowLine)
	denyPkt, denyCase := build(denyLine)

	results := map[string]float64{}
	b.Run("floor-tc", func(b *testing.B) {
		results["floor-tc"] = runPackets(b, trivialProgram(b, ebpf.SchedCLS, 0), allowPkt, 0)
	})
	b.Run("floor-xdp", func(b *testing.B) {
		results["floor-xdp"] = runPackets(b, trivialProgram(b, ebpf.XDP, 2), allowPkt, 2)
	})
	// The conntrack-only reference: the same programs with the ingress
	// direction open (tracked, not judged), so an established packet
	// takes the same path as the allowed one minus the policy decision.
	b.Run("conntrack-only", func(b *testing.B) {
		lc := loadConfig(b, benchcfg.ConntrackOnly())
		prog := lc.dp.Collection.Programs[benchcfg.TargetProgram]
		if prog == nil {
			b.Fatalf("no program %s", benchcfg.TargetProgram)
		}
		results["conntrack-only"] = runPackets(b, prog, allowPkt, 0)
	})
	for _, s := range packetSeries {
		for _, n := range s.sizes {
			name := fmt.Sprintf("%s=%d", s.name, n)
			// Each configuration is a sub-benchmark of its own, so that
			// -bench can select sizes without compiling the others.
			b.Run(name, func(b *testing.B) {
				lc := loadConfig(b, s.build(n))
				coll := lc.dp.Collection
				prog := coll.Programs[benchcfg.TargetProgram]
				if prog == nil {
					b.Fatalf("%s: no program %s", name, benchcfg.TargetProgram)
				}
				// Once, through the counters: the allowed packet is
				// counted against the rule it must match, the denied one
				// as a policy drop.
				_, allowCase := build(fmt.Sprintf("%s cookie=%d", allowLine, s.cookie(n)))
				for _, c := range []*packettest.Case{allowCase, denyCase} {
					if err := packettest.Run(prog, coll.Maps["rule_stats"], coll.Maps["drop_stats"], lc.reasons, c); err != nil {
						b.Fatalf("%s: %v", name, err)
					}
				}
				processed, worst := maxProcessed(b, lc.dp)
				b.Logf("%s: compile %v, load %v, policy map %d entries, ipcache %d addresses + %d prefixes, verifier max %d processed (%s)",
					name, lc.compile.Round(time.Millisecond), lc.load.Round(time.Millisecond),
					lc.entries["pol_default_web"], lc.entries["ipcache"], lc.entries["ipcache_cidr"], processed, worst)
				for _, v := range []struct {
					verdict string
					pkt     []byte
					want    uint32
				}{{"allow", allowPkt, 0}, {"deny", denyPkt, 2}} {
					b.Run(v.verdict, func(b *testing.B) {
						results[name+"/"+v.verdict] = runPackets(b, prog, v.pkt, v.want)
						b.ReportMetric(float64(processed), "verifier-max-processed")
					})
				}
			})
		}
	}
	floor, ok := results["floor-tc"]
	if !ok {
		return // a -bench filter left the floor out
	}
	var lines []string
	for _, s := range packetSeries {
		for _, verdict := range []string{"allow", "deny"} {
			first, okFirst := results[fmt.Sprintf("%s=%d/%s", s.name, s.sizes[0], verdict)]
			last, okLast := results[fmt.Sprintf("%s=%d/%s", s.name, s.sizes[len(s.sizes)-1], verdict)]
			if !okFirst || !okLast {
				continue
			}
			lines = append(lines, fmt.Sprintf("%s/%s: %.1f → %.1f ns/packet, %.1f → %.1f ns above the tc floor (%.1f), growth %+.1f %%",
				s.name, verdict, first, last, first-floor, last-floor, floor, 100*(last-first)/first))
			if ct, ok := results["conntrack-only"]; ok && verdict == "allow" {
				lines = append(lines, fmt.Sprintf("%s/%s: %.1f → %.1f ns above conntrack-only (%.1f)",
					s.name, verdict, first-ct, last-ct, ct))
			}
		}
	}
	slices.Sort(lines)
	b.Logf("summary:\n%s", strings.Join(lines, "\n"))
}

// BenchmarkLoadNode compiles the design's node (5,000 endpoints, 1,000
// policies) and loads every one of its programs through the kernel's
// verifier once, reporting the largest processed-instruction count of any
// program. The whole node holds more file descriptors than the limit
// allows here, so the programs load in chunks of loadChunk, each with the
// maps it uses (the program array left empty: the verifier does not need
// its contents).
func BenchmarkLoadNode(b *testing.B) {
	testenv.RequireKernel(b)
	const loadChunk = 1000
	ne, np := nodeScaleFromFlag(b)
	cfg := benchcfg.Node(ne, np)
	for b.Loop() {
		arts, err := compiler.Compile(cfg, compiler.Options{Node: benchcfg.NodeName})
		if err != nil {
			b.Fatal(err)
		}
		ra, err := runtime.ParseArtifacts(arts[0].Node, arts[0].Files)
		if err != nil {
			b.Fatal(err)
		}
		var names []string
		for _, p := range arts[0].Manifest.Programs {
			names = append(names, p.Name)
		}
		start := time.Now()
		best, worst, loaded := 0, "", 0
		for i := 0; i < len(names); i += loadChunk {
			sub := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}, Types: ra.Spec.Types}
			for _, name := range names[i:min(i+loadChunk, len(names))] {
				ps := ra.Spec.Programs[name]
				sub.Programs[name] = ps.Copy()
				for _, ins := range ps.Instructions {
					if ref := ins.Reference(); ins.IsLoadFromMap() && ref != "" && sub.Maps[ref] == nil {
						ms := ra.Spec.Maps[ref].Copy()
						if ms.Type == ebpf.ProgramArray {
							ms.Contents = nil
						}
						sub.Maps[ref] = ms
					}
				}
			}
			coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
			if err != nil {
				b.Fatalf("programs %d to %d: %v", i, i+loadChunk, err)
			}
			for name, prog := range coll.Programs {
				m := processedInsns.FindStringSubmatch(prog.VerifierLog)
				if m == nil {
					coll.Close()
					b.Fatalf("program %s: no processed-instruction count in the verifier log", name)
				}
				n, _ := strconv.Atoi(m[1])
				if n > best || n == best && name < worst {
					best, worst = n, name
				}
				loaded++
			}
			coll.Close()
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(loaded), "programs")
		b.ReportMetric(float64(best), "verifier-max-processed")
		b.ReportMetric(elapsed.Seconds(), "load-s")
		b.Logf("loaded %d programs in %v; verifier max %d processed (%s)", loaded, elapsed.Round(time.Millisecond), best, worst)
	}
}

var processedInsns = regexp.MustCompile(`processed (\d+) insns`)
