package lower

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
)

// BenchmarkIncrementalAddEndpoint adds one endpoint to the design's node
// (5,000 endpoints, 1,000 policies; benchcfg.Node) through Incremental and
// reports add-us, the mean time of AddEndpoint alone, and the map
// operations it returns. AddEndpoint changes the Incremental, so each of
// the rounds starts from a fresh one; ns/op is the wall time of all the
// rounds with their setup, and means little.
func BenchmarkIncrementalAddEndpoint(b *testing.B) {
	const rounds = 10
	cfg := benchcfg.Node(5000, 1000)
	cfg.Nodes = append(cfg.Nodes, &model.Node{Name: "node-b", Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.2")}})
	cases := []struct {
		name string
		ep   *model.Endpoint
	}{
		// Selected by the namespace's app-1 policies and named as a peer
		// by its app-0 policies: the peers' policy maps gain entries.
		{"local,new-identity", benchEndpoint(benchcfg.NodeName, map[string]string{"app": "app-1", "tier": "tier-new"})},
		{"local,existing-identity", benchEndpoint(benchcfg.NodeName, map[string]string{"app": "app-1", "tier": "tier-0"})},
		{"remote,new-identity", benchEndpoint("node-b", map[string]string{"app": "app-1", "tier": "tier-new"})},
		{"remote,existing-identity", benchEndpoint("node-b", map[string]string{"app": "app-1", "tier": "tier-0"})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			next := benchcfg.WithEndpoint(cfg, c.ep)
			var setup, add time.Duration
			var ops, maps, n int
			for b.Loop() {
				for range rounds {
					start := time.Now()
					inc, err := NewIncremental(cfg, cfg.Nodes[0])
					if err != nil {
						b.Fatal(err)
					}
					setup += time.Since(start)
					// The setup's garbage is not the update's: collect
					// it before the clock runs.
					runtime.GC()
					start = time.Now()
					d, err := inc.AddEndpoint(next, c.ep)
					add += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					ops, maps = d.Ops(), len(d.Maps)
					n++
				}
			}
			b.ReportMetric(float64(add.Nanoseconds())/float64(n)/1e3, "add-us")
			b.ReportMetric(float64(ops), "map-ops")
			b.ReportMetric(float64(maps), "maps-touched")
			b.ReportMetric(float64(setup.Milliseconds())/float64(n), "setup-ms")
		})
	}
}

func benchEndpoint(node string, labels map[string]string) *model.Endpoint {
	return &model.Endpoint{
		Namespace: "ns-000", Name: "pod-new", Node: node, Interface: "lxcnew",
		Addresses: []netip.Addr{netip.MustParseAddr("10.200.0.1")},
		Labels:    labels,
	}
}
