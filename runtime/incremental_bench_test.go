//go:build linux

package runtime_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// writeBenchConfig writes cfg (from benchcfg.Node) as ebpfd reads a large
// configuration: cluster, nodes, namespaces and policies in CUE, the
// endpoints in a JSON inventory (the loader's fast path). rulePort, when
// not 0, replaces the first port of the first policy.
func writeBenchConfig(tb testing.TB, dir string, cfg *model.Config, rulePort uint16) {
	tb.Helper()
	var b strings.Builder
	q := strconv.Quote
	b.WriteString("package ebpfc\n\n")
	fmt.Fprintf(&b, "cluster: {name: %s, podCIDRs: [%s], serviceCIDRs: [%s]}\n",
		q(cfg.Cluster.Name), q(cfg.Cluster.PodCIDRs[0].String()), q(cfg.Cluster.ServiceCIDRs[0].String()))
	for _, n := range cfg.Nodes {
		fmt.Fprintf(&b, "nodes: %s: {addresses: [%s], devices: [%s]}\n", q(n.Name), q(n.Addresses[0].String()), q(n.Devices[0]))
	}
	for _, ns := range cfg.Namespaces {
		fmt.Fprintf(&b, "namespaces: %s: labels: team: %s\n", q(ns.Name), q(ns.Labels["team"]))
	}
	for j, p := range cfg.Policies {
		fmt.Fprintf(&b, "policies: %s: %s: {\n\tendpointSelector: matchLabels: app: %s\n\tingress: [", q(p.Namespace), q(p.Name), q(p.EndpointSelector.MatchLabels["app"]))
		for _, r := range p.Ingress {
			b.WriteString("{\n\t\tfromEndpoints: [")
			for i, s := range r.Endpoints {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "{matchLabels: app: %s}", q(s.MatchLabels["app"]))
			}
			b.WriteString("]\n\t\tfromCIDRSet: [")
			for i, c := range r.CIDRs {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "{cidr: %s", q(c.CIDR.String()))
				if len(c.Except) > 0 {
					var ex []string
					for _, e := range c.Except {
						ex = append(ex, q(e.String()))
					}
					fmt.Fprintf(&b, ", except: [%s]", strings.Join(ex, ", "))
				}
				b.WriteString("}")
			}
			b.WriteString("]\n\t\ttoPorts: [{ports: [")
			for i, pr := range r.Ports {
				if i > 0 {
					b.WriteString(", ")
				}
				port := pr.Port
				if j == 0 && i == 0 && rulePort != 0 {
					port = rulePort
				}
				fmt.Fprintf(&b, "{port: %d, protocol: %s}", port, q(string(pr.Protocol)))
			}
			b.WriteString("]}]\n\t}")
		}
		b.WriteString("]\n}\n")
	}
	writeFile(tb, filepath.Join(dir, "cluster.cue"), b.String())

	type jsonEndpoint struct {
		Namespace string            `json:"namespace"`
		Name      string            `json:"name"`
		Node      string            `json:"node"`
		Interface string            `json:"interface"`
		Addresses []string          `json:"addresses"`
		Labels    map[string]string `json:"labels"`
	}
	var inv struct {
		Endpoints []jsonEndpoint `json:"endpoints"`
	}
	for _, ep := range cfg.Endpoints {
		var addrs []string
		for _, a := range ep.Addresses {
			addrs = append(addrs, a.String())
		}
		inv.Endpoints = append(inv.Endpoints, jsonEndpoint{ep.Namespace, ep.Name, ep.Node, ep.Interface, addrs, ep.Labels})
	}
	raw, err := json.Marshal(inv)
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "endpoints.json"), string(raw))
}

// TestBenchConfigFiles checks, at a small size, that the files the
// config-change benchmark writes load and apply, and that adding an endpoint
// to them and changing a rule take the incremental path.
func TestBenchConfigFiles(t *testing.T) {
	testenv.RequireKernel(t)
	cfg := benchcfg.Node(40, 8)
	dir := t.TempDir()
	writeBenchConfig(t, dir, cfg, 0)
	d := startDaemon(t, runtime.Options{ConfigDir: dir, PollInterval: -1})
	if st := d.Status(); st.LastError != nil || st.Generation != 1 || len(st.Programs) < 3*40 {
		t.Fatalf("after start: generation %d, %d programs, error %+v", st.Generation, len(st.Programs), st.LastError)
	}
	writeBenchConfig(t, dir, benchcfg.WithEndpoint(cfg, benchNewEndpoint(0)), 0)
	res, err := d.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Incremental || len(res.Loaded) < 2 || slices.ContainsFunc(res.Loaded, func(p string) bool { return !strings.Contains(p, "pod_new_000") }) {
		t.Errorf("adding an endpoint: incremental %v, loaded %v; want the incremental path and the new endpoint's programs", res.Incremental, res.Loaded)
	}
	writeBenchConfig(t, dir, benchcfg.WithEndpoint(cfg, benchNewEndpoint(0)), 8443)
	res, err = d.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Incremental || len(res.Loaded) != 0 || res.CompileTime != 0 || !slices.ContainsFunc(res.Maps, runtime.MapChange.Changed) {
		t.Errorf("changing a rule: incremental %v, loaded %v, compile %v, maps %+v; want the incremental path changing entries and loading nothing", res.Incremental, res.Loaded, res.CompileTime, res.Maps)
	}
}

// benchNewEndpoint is the i-th endpoint the benchmark adds: on the node,
// with a label set of its own that the namespace's app-0 policies name as
// a peer (app-1).
func benchNewEndpoint(i int) *model.Endpoint {
	return &model.Endpoint{
		Namespace: "ns-000", Name: fmt.Sprintf("pod-new-%03d", i), Node: benchcfg.NodeName, Interface: fmt.Sprintf("lxcnew%03d", i),
		Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})},
		Labels:    map[string]string{"app": "app-1", "tier": fmt.Sprintf("tier-new-%d", i)},
	}
}

// BenchmarkConfigChange measures ebpfd's config-change path at 5,000
// endpoints and 1,000 policies (benchcfg.Node) on one node: the daemon runs
// the configuration from a directory (policies in CUE, endpoints in a JSON
// inventory); each step rewrites the files and applies them as the watcher
// would. "endpoint-added" adds one endpoint per iteration (a new label set
// on the node, named as a peer by ten policies): the incremental path,
// which moves another endpoint when the new one's index collides.
// "rule-changed" changes one port of one policy back and forth: the
// incremental path too. It reports the time split into config (load and validate), compute,
// compile and kernel (load, map, slot and attach operations), the map
// operations issued and programs loaded, and the daemon's resident memory.
// The endpoints' devices do not exist, so their programs wait for them
// (pinned), as on a node whose pods are still being created.
//
// The first apply compiles and loads the whole node (about a minute here);
// run it with -benchtime=Nx.
func BenchmarkConfigChange(b *testing.B) {
	const endpoints, policies = 5000, 1000
	testenv.RequireKernel(b)
	cfg := benchcfg.Node(endpoints, policies)
	dir := b.TempDir()
	writeBenchConfig(b, dir, cfg, 0)
	pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-bench-"))
	b.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
	start := time.Now()
	d, err := runtime.New(runtime.Options{Node: benchcfg.NodeName, ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Stop)
	st := d.Status()
	if st.LastError != nil {
		b.Fatal(st.LastError.Message)
	}
	b.Logf("initial apply: %v, %d programs", time.Since(start), len(st.Programs))
	goruntime.GC()
	debug.FreeOSMemory()
	b.Logf("after the initial apply: rss %d MB", vmRSS(b)/1024)

	// The steps share the daemon (its first apply takes minutes): the
	// endpoints the first adds stay for the second.
	for _, step := range []string{"endpoint-added", "rule-changed"} {
		b.Run(step, func(b *testing.B) {
			// Sums over the applies of each path: [0] full, [1] incremental.
			type sums struct {
				n                                       int
				config, compute, compile, kernel, total time.Duration
				ops, entries, loaded                    int
			}
			var by [2]sums
			n := 0
			for b.Loop() {
				b.StopTimer()
				switch step {
				case "endpoint-added":
					cfg = benchcfg.WithEndpoint(cfg, benchNewEndpoint(n))
					writeBenchConfig(b, dir, cfg, 0)
				case "rule-changed":
					port := uint16(8443)
					if n%2 == 1 {
						port = 0
					}
					writeBenchConfig(b, dir, cfg, port)
				}
				b.StartTimer()
				res, err := d.Apply(dir)
				if err != nil {
					b.Fatal(err)
				}
				n++
				o, e := mapOps(res)
				kernel := res.LoadTime + res.SyncTime
				path := &by[0]
				if res.Incremental {
					kernel, path = res.KernelTime, &by[1]
				}
				path.n++
				path.config += res.ConfigTime
				path.compute += res.ComputeTime
				path.compile += res.CompileTime
				path.kernel += kernel
				path.total += res.TotalTime
				path.ops, path.entries, path.loaded = path.ops+o, path.entries+e, path.loaded+len(res.Loaded)
				b.Logf("%s %d: incremental %v, config %v, compute %v, compile %v, kernel %v (load %v, sync %v), total %v, without config %v, %d map ops, %d entries, %d programs loaded, %d replaced",
					step, n, res.Incremental, res.ConfigTime, res.ComputeTime, res.CompileTime, kernel, res.LoadTime, res.SyncTime, res.TotalTime, res.TotalTime-res.ConfigTime, o, e, len(res.Loaded), len(res.Replaced))
			}
			for i, name := range []string{"full", "inc"} {
				p := by[i]
				if p.n == 0 {
					continue
				}
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(p.n) / 1000 }
				b.ReportMetric(ms(p.config), name+"-config-ms")
				b.ReportMetric(ms(p.compute), name+"-compute-ms")
				b.ReportMetric(ms(p.compile), name+"-compile-ms")
				b.ReportMetric(ms(p.kernel), name+"-kernel-ms")
				b.ReportMetric(ms(p.total-p.config), name+"-change-ms")
				b.ReportMetric(float64(p.ops)/float64(p.n), name+"-mapops")
				b.ReportMetric(float64(p.entries)/float64(p.n), name+"-entries")
				b.ReportMetric(float64(p.loaded)/float64(p.n), name+"-progs-loaded")
			}
			b.ReportMetric(float64(by[1].n)/float64(n), "incremental-share")
			goruntime.GC()
			debug.FreeOSMemory()
			b.ReportMetric(float64(vmRSS(b))/1024, "rss-MB")
		})
	}
}
