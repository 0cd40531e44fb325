package compiler_test

import (
	"cmp"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// benchConfig builds, deterministically, a configuration with n endpoints
// and n policies, every endpoint on the one node "node-a" (the worst case
// for a node). It uses only what the lowering supports: CIDR peers (some
// with except, some nested), numeric TCP, UDP and ANY ports.
//
// Endpoints spread over max(1, n/100) namespaces and carry an app label with
// ten values per namespace; policy j lives in namespace j%namespaces and
// selects one app value there, so at scale a policy selects about ten
// endpoints and an endpoint is selected by about ten policies. Each policy
// has one ingress rule: its own /24 (every fourth with a /26 excepted), and
// every tenth also the /22 that contains it, with TCP ports, plus UDP/53 on
// every third and ANY/8080 on every seventh.
func benchConfig(n int) *model.Config {
	nns := max(1, n/100)
	ns := func(i int) string { return fmt.Sprintf("ns-%03d", i%nns) }
	cfg := &model.Config{
		Cluster: model.Cluster{
			Name:         "bench",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")},
		},
		Nodes: []*model.Node{{
			Name:      "node-a",
			Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")},
			Devices:   []string{"eth0"},
			Labels:    map[string]string{},
			Features:  map[string]bool{},
		}},
		Settings: model.Settings{Enforcement: model.EnforceDefault, VerdictEvents: "all"},
	}
	for i := range nns {
		name := ns(i)
		cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{
			Name:   name,
			Labels: map[string]string{"kubernetes.io/metadata.name": name, "team": fmt.Sprintf("team-%d", i%7)},
		})
	}
	for i := range n {
		a := uint32(10<<24 | (i + 1))
		cfg.Endpoints = append(cfg.Endpoints, &model.Endpoint{
			Namespace: ns(i),
			Name:      fmt.Sprintf("pod-%05d", i),
			Node:      "node-a",
			Interface: fmt.Sprintf("lxc%05d", i),
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})},
			Labels: map[string]string{
				"app":  fmt.Sprintf("app-%d", (i/nns)%10),
				"tier": fmt.Sprintf("tier-%d", i%3),
			},
		})
	}
	for j := range n {
		hi, lo := byte(j>>8), byte(j)
		peer := &model.CIDRPeer{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo, 0}), 24)}
		if j%4 == 0 {
			peer.Except = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo, 192}), 26)}
		}
		r := &model.Rule{CIDRs: []*model.CIDRPeer{peer}, HasPeers: true}
		if j%10 == 0 {
			r.CIDRs = append(r.CIDRs, &model.CIDRPeer{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo &^ 3, 0}), 22)})
		}
		r.Ports = []*model.PortRule{
			{Port: uint16(80 + j%100), Protocol: model.ProtoTCP},
			{Port: 443, Protocol: model.ProtoTCP},
		}
		if j%3 == 0 {
			r.Ports = append(r.Ports, &model.PortRule{Port: 53, Protocol: model.ProtoUDP})
		}
		if j%7 == 0 {
			r.Ports = append(r.Ports, &model.PortRule{Port: 8080, Protocol: model.ProtoAny})
		}
		cfg.Policies = append(cfg.Policies, &model.Policy{
			Namespace:        ns(j),
			Name:             fmt.Sprintf("pol-%05d", j),
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (j/nns)%10)}},
			Ingress:          []*model.Rule{r},
		})
	}
	slices.SortFunc(cfg.Endpoints, func(a, b *model.Endpoint) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(cfg.Policies, func(a, b *model.Policy) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return cfg
}

// benchCUE renders a configuration from benchConfig as CUE source.
func benchCUE(cfg *model.Config) string {
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
	for _, ep := range cfg.Endpoints {
		fmt.Fprintf(&b, "endpoints: %s: %s: {node: %s, interface: %s, addresses: [%s], labels: {app: %s, tier: %s}}\n",
			q(ep.Namespace), q(ep.Name), q(ep.Node), q(ep.Interface), q(ep.Addresses[0].String()), q(ep.Labels["app"]), q(ep.Labels["tier"]))
	}
	for _, p := range cfg.Policies {
		fmt.Fprintf(&b, "policies: %s: %s: {\n\tendpointSelector: matchLabels: app: %s\n\tingress: [", q(p.Namespace), q(p.Name), q(p.EndpointSelector.MatchLabels["app"]))
		for _, r := range p.Ingress {
			b.WriteString("{\n\t\tfromCIDRSet: [")
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
				fmt.Fprintf(&b, "{port: %d, protocol: %s}", pr.Port, q(string(pr.Protocol)))
			}
			b.WriteString("]}]\n\t}")
		}
		b.WriteString("]\n}\n")
	}
	return b.String()
}

// TestBenchConfig checks, at a small size, that the benchmarks' generated
// configuration compiles, and that its CUE rendering (what BenchmarkLoadCUE
// loads) loads to a configuration that compiles to the same programs.
func TestBenchConfig(t *testing.T) {
	cfg := benchConfig(10)
	direct, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := load.LoadFS(fstest.MapFS{"bench.cue": {Data: []byte(benchCUE(cfg))}}, []string{"bench.cue"})
	if err != nil {
		t.Fatal(err)
	}
	viaCUE, err := compiler.Compile(loaded, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(direct) != 1 || len(viaCUE) != 1 {
		t.Fatalf("compiled %d and %d nodes, want 1", len(direct), len(viaCUE))
	}
	a, b := direct[0].Manifest.Programs, viaCUE[0].Manifest.Programs
	if len(a) != 6*len(cfg.Endpoints) {
		t.Errorf("%d programs, want %d (entry, IPv4 and IPv6 programs in both directions: egress is open but tracks connections)", len(a), 6*len(cfg.Endpoints))
	}
	if len(a) != len(b) {
		t.Fatalf("%d programs from the model, %d from CUE", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].SHA256 != b[i].SHA256 {
			t.Errorf("program %d: %s %s from the model, %s %s from CUE", i, a[i].Name, a[i].SHA256, b[i].Name, b[i].SHA256)
		}
	}
}

// BenchmarkCompile compiles one node that runs every endpoint, with as many
// policies as endpoints. Besides time and allocations per compile it reports
// ns/program (time per generated program), the number of programs,
// instructions and initial map entries, and heap-MB: the live heap after a compile with its result
// still reachable.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("endpoints=%d,policies=%d", n, n), func(b *testing.B) {
			cfg := benchConfig(n)
			b.ReportAllocs()
			var (
				arts    []*compiler.Artifacts
				elapsed time.Duration
				err     error
				runs    int
			)
			for b.Loop() {
				arts = nil // let the previous result go before the next compile
				start := time.Now()
				arts, err = compiler.Compile(cfg, compiler.Options{})
				elapsed += time.Since(start)
				runs++
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var progs, insns, entries int
			for _, a := range arts {
				for _, p := range a.Manifest.Programs {
					progs++
					insns += p.Instructions
				}
				for _, m := range a.Manifest.Maps {
					entries += m.Entries
				}
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			runtime.KeepAlive(arts)
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(runs)/float64(progs), "ns/program")
			b.ReportMetric(float64(progs), "programs")
			b.ReportMetric(float64(insns), "instructions")
			b.ReportMetric(float64(entries), "map-entries")
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		})
	}
}

// BenchmarkLoadCUE loads a moderately sized configuration (100 endpoints,
// 100 policies) through CUE evaluation. The JSON fast path for inventories
// has its own benchmark, BenchmarkLoadJSONEndpoints in package load.
func BenchmarkLoadCUE(b *testing.B) {
	const n = 100
	src := []byte(benchCUE(benchConfig(n)))
	fsys := fstest.MapFS{"bench.cue": {Data: src}}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := load.LoadFS(fsys, []string{"bench.cue"})
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Policies) != n || len(cfg.Endpoints) != n {
			b.Fatalf("%d policies, %d endpoints", len(cfg.Policies), len(cfg.Endpoints))
		}
	}
}
