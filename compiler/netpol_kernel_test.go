//go:build linux

package compiler_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/compiler/reference"
	"github.com/ebpfc/ebpfc/internal/netpolcases"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// TestKubernetesTruthTablesKernel holds the compiled programs, run in the
// kernel with BPF_PROG_TEST_RUN, to the Kubernetes e2e-style reachability
// tables of internal/netpolcases (namespaces x, y, z × pods a, b, c; ports
// 80 and 81; TCP, UDP and SCTP). A connection's first packet goes through
// the egress program of the source pod on its node, then the ingress
// program of the destination pod on its node. Every probe is also asked of
// the reference evaluator, and the two must agree.
func TestKubernetesTruthTablesKernel(t *testing.T) {
	testenv.RequireKernel(t)
	var probes, disagreements int
	for _, c := range netpolcases.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := c.Load()
			if err != nil {
				t.Fatal(err)
			}
			arts, err := compiler.Compile(cfg, compiler.Options{})
			if err != nil {
				t.Fatal(err)
			}
			nodes := map[string]*ebpf.Collection{}
			for _, a := range arts {
				ra, err := runtime.ParseArtifacts(a.Node, a.Files)
				if err != nil {
					t.Fatal(err)
				}
				dp, err := runtime.Load(ra)
				if err != nil {
					t.Fatalf("node %s: %v", a.Node, err)
				}
				t.Cleanup(dp.Close)
				nodes[a.Node] = dp.Collection
			}
			ref := reference.New(cfg)
			kernel := func(src, dst netip.Addr, proto model.Protocol, port uint16) bool {
				probes++
				ok, err := kernelConnection(cfg, nodes, src, dst, proto, port)
				if err != nil {
					t.Fatal(err)
				}
				want := ref.Connection(reference.Flow{Src: src, Dst: dst, Protocol: proto.Number(), SrcPort: 40000, DstPort: port}).Allowed
				if ok != want {
					disagreements++
					t.Errorf("%s -> %s %s/%d: kernel allowed %v, reference %v", src, dst, proto, port, ok, want)
				}
				return ok
			}
			for _, ch := range c.Checks {
				want, err := netpolcases.ParseMatrix(ch.Expected())
				if err != nil {
					t.Fatal(err)
				}
				got := netpolcases.Reach(ch.Protocol, ch.Port, kernel)
				if d := netpolcases.Compare(want, got); len(d) > 0 {
					t.Errorf("%s/%d: %d cells differ:\n%s\ngot:\n%swant:\n%s", ch.Protocol, ch.Port, len(d), strings.Join(d, "\n"), got, want)
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
				if got := kernel(src, dst, p.Protocol, p.Port); got != p.Allowed {
					t.Errorf("%s: allowed %v, want %v", p, got, p.Allowed)
				}
			}
		})
	}
	t.Logf("%d connections probed in the kernel, %d disagreements with the reference evaluator", probes, disagreements)
}

// kernelConnection runs the first packet of a connection through the
// egress program of src's endpoint (when src is one) and the ingress
// program of dst's endpoint (when dst is one).
func kernelConnection(cfg *model.Config, nodes map[string]*ebpf.Collection, src, dst netip.Addr, proto model.Protocol, port uint16) (bool, error) {
	pc := &packettest.Case{
		Proto: strings.ToLower(string(proto)), Src: netip.AddrPortFrom(src, 40000), Dst: netip.AddrPortFrom(dst, port),
		SYN: proto == model.ProtoTCP, Ver: -1, Type: -1, Cookie: -1,
	}
	pc.Line = fmt.Sprintf("%s %s > %s", pc.Proto, pc.Src, pc.Dst)
	pkt, err := pc.Build()
	if err != nil {
		return false, err
	}
	for _, step := range []struct {
		addr   netip.Addr
		prefix string
	}{{src, "from_"}, {dst, "to_"}} {
		ep := endpointOf(cfg, step.addr)
		if ep == nil {
			continue
		}
		name := step.prefix + ep.Namespace + "_" + ep.Name
		prog := nodes[ep.Node].Programs[name]
		if prog == nil {
			return false, fmt.Errorf("no program %s on node %s", name, ep.Node)
		}
		ret, err := prog.Run(&ebpf.RunOptions{Data: pkt})
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		if ret != 0 {
			return false, nil
		}
	}
	return true, nil
}

func endpointOf(cfg *model.Config, a netip.Addr) *model.Endpoint {
	for _, ep := range cfg.Endpoints {
		for _, x := range ep.Addresses {
			if x == a {
				return ep
			}
		}
	}
	return nil
}
