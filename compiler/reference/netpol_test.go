package reference

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/netpolcases"
)

// connectionProber asks the evaluator about the first packet of a
// connection.
func connectionProber(e *Evaluator) netpolcases.Prober {
	return func(src, dst netip.Addr, proto model.Protocol, port uint16) bool {
		return e.Connection(Flow{Src: src, Dst: dst, Protocol: proto.Number(), SrcPort: 40000, DstPort: port}).Allowed
	}
}

// TestKubernetesTruthTables holds the evaluator to the Kubernetes e2e-style
// reachability tables. Where docs/policy.md departs from Kubernetes, the
// table for the documented semantics applies, and the test also checks that
// the departure is real, so a stale note fails.
func TestKubernetesTruthTables(t *testing.T) {
	for _, c := range netpolcases.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := c.Load()
			if err != nil {
				t.Fatal(err)
			}
			probe := connectionProber(New(cfg))
			for _, ch := range c.Checks {
				want, err := netpolcases.ParseMatrix(ch.Expected())
				if err != nil {
					t.Fatal(err)
				}
				got := netpolcases.Reach(ch.Protocol, ch.Port, probe)
				if d := netpolcases.Compare(want, got); len(d) > 0 {
					t.Errorf("%s/%d: %d cells differ:\n%s\ngot:\n%swant:\n%s", ch.Protocol, ch.Port, len(d), strings.Join(d, "\n"), got, want)
				}
				if ch.Ebpfc != "" {
					k8s, err := netpolcases.ParseMatrix(ch.Reachability)
					if err != nil {
						t.Fatal(err)
					}
					if len(netpolcases.Compare(k8s, got)) == 0 {
						t.Errorf("%s/%d: the evaluator agrees with Kubernetes; drop the divergence note %q", ch.Protocol, ch.Port, c.Divergence)
					}
				}
			}
			for _, p := range c.Probes {
				src, err := netpolcases.Resolve(p.From)
				if err != nil {
					t.Fatal(err)
				}
				dst, err := netpolcases.Resolve(p.To)
				if err != nil {
					t.Fatal(err)
				}
				if got := probe(src, dst, p.Protocol, p.Port); got != p.Allowed {
					t.Errorf("%s: allowed %v, want %v", p, got, p.Allowed)
				}
			}
		})
	}
}
