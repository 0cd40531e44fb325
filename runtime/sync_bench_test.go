//go:build linux

package runtime_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// scaleConfig is a node with endpoints endpoints and policies policies:
// endpoint i is default-ish pod-i in one of endpoints/100 namespaces, with
// an app label shared by about ten endpoints; policy j selects one app
// value in its namespace and allows TCP to port 80+j%100 and 443 from its
// own /24 of world addresses, and from the endpoints of another app.
// rulePort, when not 0, replaces policy 0's first port: the "one rule
// changed" step. The interfaces do not exist, so programs wait for their
// devices: the benchmarks measure loading and map sync, not attaching.
func scaleConfig(endpoints, policies int, rulePort uint16) *model.Config {
	nns := max(1, endpoints/100)
	ns := func(i int) string { return fmt.Sprintf("ns-%03d", i%nns) }
	cfg := &model.Config{
		Cluster: model.Cluster{Name: "bench",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}},
		Nodes: []*model.Node{{Name: "node-a", Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")},
			Labels: map[string]string{}, Features: map[string]bool{}}},
		Settings: model.Settings{Enforcement: model.EnforceDefault, VerdictEvents: "all", MapSizes: map[string]uint32{"policy": 4096, "ipcache": 65536}},
	}
	for i := range nns {
		cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{Name: ns(i), Labels: map[string]string{"kubernetes.io/metadata.name": ns(i)}})
	}
	for i := range endpoints {
		a := uint32(10<<24 | (i + 1))
		cfg.Endpoints = append(cfg.Endpoints, &model.Endpoint{
			Namespace: ns(i), Name: fmt.Sprintf("pod-%05d", i), Node: "node-a", Interface: fmt.Sprintf("bx%05d", i),
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})},
			Labels:    map[string]string{"app": fmt.Sprintf("app-%d", (i/nns)%10)},
		})
	}
	for j := range policies {
		port := uint16(80 + j%100)
		if j == 0 && rulePort != 0 {
			port = rulePort
		}
		cfg.Policies = append(cfg.Policies, &model.Policy{
			Namespace: ns(j), Name: fmt.Sprintf("pol-%05d", j),
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (j/nns)%10)}},
			Ingress: []*model.Rule{{
				CIDRs:     []*model.CIDRPeer{{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(j >> 8), byte(j), 0}), 24)}},
				Endpoints: []*model.Selector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (j/nns+1)%10)}}},
				HasPeers:  true,
				Ports:     []*model.PortRule{{Port: port, Protocol: model.ProtoTCP}, {Port: 443, Protocol: model.ProtoTCP}},
			}},
		})
	}
	sortConfig(cfg)
	return cfg
}

func sortConfig(cfg *model.Config) {
	less := strings.Compare
	slices.SortFunc(cfg.Endpoints, func(a, b *model.Endpoint) int {
		if c := less(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return less(a.Name, b.Name)
	})
	slices.SortFunc(cfg.Policies, func(a, b *model.Policy) int {
		if c := less(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return less(a.Name, b.Name)
	})
}

func compileNode(tb testing.TB, cfg *model.Config) (*runtime.Artifacts, time.Duration) {
	tb.Helper()
	start := time.Now()
	arts, err := compiler.Compile(cfg, compiler.Options{Node: "node-a"})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := runtime.ParseArtifacts("node-a", arts[0].Files)
	if err != nil {
		tb.Fatal(err)
	}
	return a, time.Since(start)
}

// benchDaemon starts a daemon without a source; the benchmark applies
// artifacts itself.
func benchDaemon(b *testing.B) *runtime.Daemon {
	b.Helper()
	testenv.RequireKernel(b)
	pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-bench-"))
	d, err := runtime.New(runtime.Options{Node: "node-a", PinDir: pinDir, PollInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		d.Stop()
		runtime.Cleanup(pinDir, nil)
	})
	return d
}

func mapOps(res *runtime.ApplyResult) (ops, entries int) {
	for _, m := range res.Maps {
		ops += m.Ops
		entries += m.Added + m.Updated + m.Deleted
	}
	return ops, entries
}

// BenchmarkSyncScale measures, at 5,000 endpoints and 1,000 policies on one
// node, the time from a configuration change to the kernel's maps updated,
// in two parts: the compile (in-process, as ebpfd --config does) and the
// apply (load what changed, diff and write the maps, swap programs). It
// reports the map operations issued and entries changed per apply, and the
// programs loaded. Steps alternate between two configurations, so every
// iteration is a real change.
func BenchmarkSyncScale(b *testing.B) {
	const endpoints, policies = 5000, 1000
	base, compileBase := compileNode(b, scaleConfig(endpoints, policies, 0))
	b.Logf("compile of the base configuration: %v", compileBase)

	steps := []struct {
		name string
		cfg  *model.Config
	}{
		{"rule-changed", scaleConfig(endpoints, policies, 8443)},
		{"endpoint-added", func() *model.Config {
			cfg := scaleConfig(endpoints, policies, 0)
			cfg.Endpoints = append(cfg.Endpoints, &model.Endpoint{
				Namespace: "ns-000", Name: "pod-zzzzz", Node: "node-a", Interface: "bxnew",
				Addresses: []netip.Addr{netip.MustParseAddr("10.200.0.1")}, Labels: map[string]string{"app": "app-0"},
			})
			sortConfig(cfg)
			return cfg
		}()},
	}
	for _, step := range steps {
		b.Run(step.name, func(b *testing.B) {
			changed, compileTime := compileNode(b, step.cfg)
			d := benchDaemon(b)
			start := time.Now()
			res, err := d.ApplyArtifacts(base, "base")
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("initial apply: %v (%d programs loaded)", time.Since(start), len(res.Loaded))
			var ops, entries, loaded, n int
			var apply time.Duration
			for b.Loop() {
				next := changed
				if n%2 == 1 {
					next = base
				}
				res, err := d.ApplyArtifacts(next, step.name)
				if err != nil {
					b.Fatal(err)
				}
				o, e := mapOps(res)
				ops, entries, loaded = ops+o, entries+e, loaded+len(res.Loaded)
				apply += res.TotalTime
				n++
			}
			b.ReportMetric(float64(compileTime.Milliseconds()), "compile-ms")
			b.ReportMetric(float64(apply.Microseconds())/float64(n)/1000, "apply-ms")
			b.ReportMetric(float64(ops)/float64(n), "mapops/op")
			b.ReportMetric(float64(entries)/float64(n), "entries/op")
			b.ReportMetric(float64(loaded)/float64(n), "progs-loaded/op")
		})
	}
}

// BenchmarkDaemonMemory reports the daemon's memory with the 5,000-endpoint,
// 1,000-policy node applied: the Go heap in use (after the compile's results
// are dropped and a GC) and the process's resident set, which also holds
// the test binary and the compiler.
func BenchmarkDaemonMemory(b *testing.B) {
	d := benchDaemon(b)
	for b.Loop() {
		a, _ := compileNode(b, scaleConfig(5000, 1000, 0))
		if _, err := d.ApplyArtifacts(a, "scale"); err != nil {
			b.Fatal(err)
		}
	}
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(float64(vmRSS(b))/1024, "rss-MB")
}

// vmRSS returns the resident set of this process in KiB.
func vmRSS(tb testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// BenchmarkLossUnderLoad sends UDP datagrams from one endpoint to another
// at about 50,000 a second while the daemon restarts (stop, then a new
// daemon adopting the pins) or upgrades (program code changes back and
// forth), and reports the datagrams lost per restart or upgrade, next to a
// baseline that only waits. rcvbuf-drops/op counts datagrams the receiving
// socket dropped (after the datapath passed them).
func BenchmarkLossUnderLoad(b *testing.B) {
	for _, what := range []string{"baseline", "restart", "upgrade"} {
		b.Run(what, func(b *testing.B) {
			topo := newTopology(b, "client", "server")
			client, server := topo.eps[0], topo.eps[1]
			dir := b.TempDir()
			writeConfig(b, dir, topo, serverPolicy(client, []int{8080}, []int{9000}))
			pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-bench-"))
			b.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
			start := func() *runtime.Daemon {
				d, err := runtime.New(runtime.Options{Node: "node-a", ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Start(); err != nil {
					b.Fatal(err)
				}
				return d
			}
			d := start()
			s := startUDPStream(b, client, server, 9000, 20*time.Microsecond)
			time.Sleep(100 * time.Millisecond)
			upgraded := serverPolicy(client, []int{8080}, []int{9000}) + `policies: default: "client-ingress": {
	endpointSelector: matchLabels: app: "client"
	ingress: [{fromEndpoints: [{matchLabels: app: "server"}]}]
}
`
			n := 0
			for b.Loop() {
				switch what {
				case "baseline":
					time.Sleep(20 * time.Millisecond) // about as long as a restart
				case "restart":
					d.Stop()
					d = start()
				case "upgrade":
					pol := upgraded
					if n%2 == 1 {
						pol = serverPolicy(client, []int{8080}, []int{9000})
					}
					writeFile(b, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+pol)
					if _, err := d.Apply(dir); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			time.Sleep(50 * time.Millisecond)
			elapsed := time.Since(s.started)
			sent, lost := s.finish()
			d.Stop()
			b.ReportMetric(float64(lost)/float64(n), "lost/op")
			b.ReportMetric(float64(sent), "datagrams")
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "datagrams/s")
			b.ReportMetric(float64(s.receiveBufferErrors(b))/float64(n), "rcvbuf-drops/op")
		})
	}
}
