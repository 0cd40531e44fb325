package compiler_test

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
)

// nodeScale is the design's node: 1,000 policies and 5,000 endpoints, every
// endpoint on the node compiled.
const (
	nodeEndpoints = 5000
	nodePolicies  = 1000
)

// TestBenchNodeConfig compiles a small benchcfg.Node and checks its shape:
// the programs, a policy map per selected endpoint, and an ipcache with
// every endpoint's address. It is the smoke test of the generator the
// node benchmarks use.
func TestBenchNodeConfig(t *testing.T) {
	cfg := benchcfg.Node(40, 8)
	arts, err := compiler.Compile(cfg, compiler.Options{Node: benchcfg.NodeName, CheckEveryPass: true})
	if err != nil {
		t.Fatal(err)
	}
	a := arts[0]
	// With 8 policies over the ten app values, endpoints of app-8 and
	// app-9 are selected by none and stay open.
	selected := 0
	for _, ep := range cfg.Endpoints {
		if ep.Labels["app"] < "app-8" {
			selected++
		}
	}
	// Each endpoint has its two entry programs, and each enforced
	// ingress its IPv4 policy program.
	progs := map[string]bool{}
	for _, p := range a.Manifest.Programs {
		progs[p.Name] = true
	}
	for _, ep := range cfg.Endpoints {
		base := strings.ReplaceAll(ep.Namespace+"_"+ep.Name, "-", "_")
		want := []string{"to_" + base, "from_" + base}
		if ep.Labels["app"] < "app-8" {
			want = append(want, "to_"+base+"_ipv4")
		}
		for _, name := range want {
			if !progs[name] {
				t.Errorf("no program %s", name)
			}
		}
	}
	pol := 0
	for _, c := range a.Lowered.Contents {
		if strings.HasPrefix(c.Map, "pol_") {
			pol++
		}
	}
	if pol != selected {
		t.Errorf("%d policy maps, want %d (one per selected endpoint)", pol, selected)
	}
	ipc := contentsOf(a.Lowered, "ipcache")
	for _, ep := range cfg.Endpoints {
		if !slices.ContainsFunc(ipc, func(e lower.Entry) bool { return e.Key[2] == 0xffff && e.Key[3] == uint64(addr4(ep.Addresses[0])) }) {
			t.Errorf("no ipcache entry for %s", ep.ID())
		}
	}
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func contentsOf(r *lower.Result, name string) []lower.Entry {
	for _, c := range r.Contents {
		if c.Map == name {
			return c.Entries
		}
	}
	return nil
}

// compileStats is what one measured compile cost.
type compileStats struct {
	elapsed     time.Duration
	allocBytes  uint64 // TotalAlloc during the compile
	allocs      uint64 // Mallocs during the compile
	peakHeap    uint64 // highest heap-object bytes seen while compiling (sampled)
	peakRSS     uint64 // VmHWM after the compile, reset before it; 0 where unknown
	heapAfter   uint64 // HeapInuse after a GC, the result still reachable
	programs    int
	insns       int
	mapEntries  int
	artifactSum string // SHA-256 over every artifact file, in node and name order
}

// measureCompile compiles cfg for benchcfg.NodeName once and measures it.
// The heap is sampled every 5 ms through runtime/metrics (which does not
// stop the world) for the peak; the process's peak resident set comes from
// /proc/self/status after clearing it through /proc/self/clear_refs.
func measureCompile(tb testing.TB, cfg *model.Config) ([]*compiler.Artifacts, compileStats) {
	tb.Helper()
	runtime.GC()
	resetPeakRSS()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	arts, err := compiler.Compile(cfg, compiler.Options{Node: benchcfg.NodeName})
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		tb.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	st := compileStats{
		elapsed:    elapsed,
		allocBytes: after.TotalAlloc - before.TotalAlloc,
		allocs:     after.Mallocs - before.Mallocs,
		peakHeap:   peak,
		peakRSS:    peakRSS(),
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.heapAfter = ms.HeapInuse
	h := sha256.New()
	for _, a := range arts {
		for _, p := range a.Manifest.Programs {
			st.programs++
			st.insns += p.Instructions
		}
		for _, m := range a.Manifest.Maps {
			st.mapEntries += m.Entries
		}
		names := make([]string, 0, len(a.Files))
		for name := range a.Files {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Fprintf(h, "%s/%s %d\n", a.Node, name, len(a.Files[name]))
			h.Write(a.Files[name])
		}
	}
	st.artifactSum = hex.EncodeToString(h.Sum(nil))
	return arts, st
}

// resetPeakRSS resets the kernel's record of this process's peak resident
// set (VmHWM), where the kernel allows it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM from /proc/self/status in bytes, or 0.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

func reportCompile(b *testing.B, st compileStats) {
	const mb = 1 << 20
	b.ReportMetric(float64(st.elapsed.Nanoseconds())/1e9, "s/compile")
	b.ReportMetric(float64(st.elapsed.Nanoseconds())/float64(st.programs), "ns/program")
	b.ReportMetric(float64(st.allocBytes)/mb, "alloc-MB")
	b.ReportMetric(float64(st.allocs), "allocs")
	b.ReportMetric(float64(st.peakHeap)/mb, "peak-heap-MB")
	if st.peakRSS > 0 {
		b.ReportMetric(float64(st.peakRSS)/mb, "peak-RSS-MB")
	}
	b.ReportMetric(float64(st.heapAfter)/mb, "heap-after-MB")
	b.ReportMetric(float64(st.programs), "programs")
	b.ReportMetric(float64(st.insns), "instructions")
	b.ReportMetric(float64(st.mapEntries), "map-entries")
	b.Logf("artifacts sha256 %s", st.artifactSum)
}

// nodeSize lets a profile run pick a smaller node:
// -args -benchnode=1000x200 (endpoints x policies).
var nodeSize = flag.String("benchnode", "", "endpoints x policies for BenchmarkCompileNode, e.g. 1000x200 (default 5000x1000)")

func nodeScaleFromFlag(b *testing.B) (int, int) {
	if *nodeSize == "" {
		return nodeEndpoints, nodePolicies
	}
	e, p, ok := strings.Cut(*nodeSize, "x")
	ne, err1 := strconv.Atoi(e)
	np, err2 := strconv.Atoi(p)
	if !ok || err1 != nil || err2 != nil || ne <= 0 || np < 0 {
		b.Fatalf("-benchnode %q: want ENDPOINTSxPOLICIES, e.g. 1000x200", *nodeSize)
	}
	return ne, np
}

// BenchmarkCompileNode compiles the design's node — 5,000 endpoints and
// 1,000 policies (benchcfg.Node) — once per iteration and reports the time,
// what it allocated, the peak heap and resident set, and the size of what
// it produced. Run it with -benchtime=1x: one compile is the measurement.
func BenchmarkCompileNode(b *testing.B) {
	ne, np := nodeScaleFromFlag(b)
	b.Run(fmt.Sprintf("endpoints=%d,policies=%d", ne, np), func(b *testing.B) {
		cfg := benchcfg.Node(ne, np)
		b.ReportAllocs()
		var st compileStats
		for b.Loop() {
			_, st = measureCompile(b, cfg)
		}
		reportCompile(b, st)
	})
}

// mapDiff counts what turns one map's contents into another's.
type mapDiff struct {
	added, updated, deleted int
}

// diffContents compares two compilations' map contents map by map. A map
// only in after counts as created with its entries added; one only in
// before as removed with its entries deleted.
func diffContents(before, after []lower.MapContents) (map[string]mapDiff, []string, []string) {
	index := func(cs []lower.MapContents) map[string][]lower.Entry {
		m := make(map[string][]lower.Entry, len(cs))
		for _, c := range cs {
			m[c.Map] = c.Entries
		}
		return m
	}
	b, a := index(before), index(after)
	out := map[string]mapDiff{}
	var created, removed []string
	for name, ae := range a {
		be, ok := b[name]
		if !ok {
			created = append(created, name)
		}
		if d := diffEntries(be, ae); d != (mapDiff{}) {
			out[name] = d
		}
	}
	for name, be := range b {
		if _, ok := a[name]; !ok {
			removed = append(removed, name)
			out[name] = mapDiff{deleted: len(be)}
		}
	}
	slices.Sort(created)
	slices.Sort(removed)
	return out, created, removed
}

// diffEntries compares two entry lists by key. A policy map's entries are
// sorted per direction, not as a whole, so both are sorted first.
func diffEntries(before, after []lower.Entry) mapDiff {
	byKey := func(a, b lower.Entry) int { return slices.Compare(a.Key, b.Key) }
	before = slices.SortedFunc(slices.Values(before), byKey)
	after = slices.SortedFunc(slices.Values(after), byKey)
	var d mapDiff
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		var c int
		switch {
		case i == len(before):
			c = 1
		case j == len(after):
			c = -1
		default:
			c = slices.Compare(before[i].Key, after[j].Key)
		}
		switch {
		case c < 0:
			d.deleted++
			i++
		case c > 0:
			d.added++
			j++
		default:
			if !slices.Equal(before[i].Value, after[j].Value) {
				d.updated++
			}
			i++
			j++
		}
	}
	return d
}

// TestDiffContents checks the diff the incremental benchmark reports with.
func TestDiffContents(t *testing.T) {
	e := func(k, v uint64) lower.Entry { return lower.Entry{Key: []uint64{k}, Value: []uint64{v}} }
	before := []lower.MapContents{
		{Map: "a", Entries: []lower.Entry{e(1, 1), e(2, 2), e(4, 4)}},
		{Map: "gone", Entries: []lower.Entry{e(1, 1), e(2, 1)}},
	}
	after := []lower.MapContents{
		{Map: "a", Entries: []lower.Entry{e(1, 1), e(2, 3), e(3, 3)}},
		{Map: "new", Entries: []lower.Entry{e(9, 9)}},
	}
	d, created, removed := diffContents(before, after)
	want := map[string]mapDiff{"a": {added: 1, updated: 1, deleted: 1}, "gone": {deleted: 2}, "new": {added: 1}}
	if fmt.Sprint(d) != fmt.Sprint(want) || fmt.Sprint(created) != "[new]" || fmt.Sprint(removed) != "[gone]" {
		t.Errorf("diff %v created %v removed %v, want %v [new] [gone]", d, created, removed, want)
	}
}

// newEndpoint is the endpoint the incremental benchmark adds: a new pod in
// ns-000 with labels no other endpoint has (a new identity) that the
// namespace's app-1 policies select and whose app-0 policies' rules name as
// a peer.
func newEndpoint(labels map[string]string) *model.Endpoint {
	return &model.Endpoint{
		Namespace: "ns-000", Name: "pod-new", Node: benchcfg.NodeName, Interface: "lxcnew",
		Addresses: []netip.Addr{netip.MustParseAddr("10.200.0.1")},
		Labels:    labels,
	}
}

// BenchmarkAddEndpoint adds one endpoint to the design's node and reports
// what has to change in the maps — entries added, updated and deleted
// (summed over maps), and maps created — found by diffing the contents of
// two full compilations, and the time of the full recompile that finds
// them today. Sub-benchmarks add an endpoint with a new identity and one
// that joins an existing identity.
func BenchmarkAddEndpoint(b *testing.B) {
	ne, np := nodeScaleFromFlag(b)
	cfg := benchcfg.Node(ne, np)
	base, _ := measureCompile(b, cfg)
	cases := []struct {
		name   string
		labels map[string]string
	}{
		{"new-identity", map[string]string{"app": "app-1", "tier": "tier-new"}},
		{"existing-identity", map[string]string{"app": "app-1", "tier": "tier-0"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			next := benchcfg.WithEndpoint(cfg, newEndpoint(c.labels))
			var st compileStats
			var arts []*compiler.Artifacts
			for b.Loop() {
				arts, st = measureCompile(b, next)
			}
			start := time.Now()
			diff, created, removed := diffContents(base[0].Lowered.Contents, arts[0].Lowered.Contents)
			diffTime := time.Since(start)
			var sum mapDiff
			names := make([]string, 0, len(diff))
			for name, d := range diff {
				sum.added += d.added
				sum.updated += d.updated
				sum.deleted += d.deleted
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				d := diff[name]
				b.Logf("%-28s +%d ~%d -%d", name, d.added, d.updated, d.deleted)
			}
			b.Logf("maps created %v, removed %v", created, removed)
			b.ReportMetric(float64(st.elapsed.Nanoseconds())/1e6, "recompile-ms")
			b.ReportMetric(float64(diffTime.Nanoseconds())/1e6, "diff-ms")
			b.ReportMetric(float64(sum.added), "entries-added")
			b.ReportMetric(float64(sum.updated), "entries-updated")
			b.ReportMetric(float64(sum.deleted), "entries-deleted")
			b.ReportMetric(float64(len(names)), "maps-touched")
			b.ReportMetric(float64(len(created)), "maps-created")
		})
	}
}
