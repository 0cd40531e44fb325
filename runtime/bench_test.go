//go:build linux

package runtime_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// repeat is how many times the kernel runs a program per BPF_PROG_TEST_RUN
// call; it reports the mean time per run.
const repeat = 100000

// Verdicts.
const (
	tcOK    = 0
	tcShot  = 2
	xdpPass = 2
)

// packetConfig is one endpoint, default/web at 10.0.1.5 on node-a, selected
// by one policy whose first ingress rule allows TCP/80 from 192.168.0.0/16
// and whose other rules-1 rules each allow TCP/80 from their own /24 in
// 172.16.0.0/12 (none of which contains the packets' sources).
func packetConfig(rules int) *model.Config {
	web := &model.Endpoint{
		Namespace: "default", Name: "web", Node: "node-a", Interface: "lxc-web",
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.1.5")},
		Labels:    map[string]string{"app": "web"},
	}
	http := []*model.PortRule{{Port: 80, Protocol: model.ProtoTCP}}
	pol := &model.Policy{
		Namespace: "default", Name: "web",
		EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []*model.Rule{{
			CIDRs:    []*model.CIDRPeer{{CIDR: netip.MustParsePrefix("192.168.0.0/16")}},
			HasPeers: true,
			Ports:    http,
		}},
	}
	for i := 1; i < rules; i++ {
		// A distinct /24 inside 172.16.0.0/12 (for up to 4,095 rules).
		pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + i>>8), byte(i), 0}), 24)
		pol.Ingress = append(pol.Ingress, &model.Rule{
			CIDRs:    []*model.CIDRPeer{{CIDR: pfx}},
			HasPeers: true,
			Ports:    http,
		})
	}
	return &model.Config{
		Cluster: model.Cluster{
			Name:         "bench",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
		},
		Nodes: []*model.Node{{
			Name: "node-a", Addresses: []netip.Addr{netip.MustParseAddr("192.168.100.1")},
			Devices: []string{"eth0"},
		}},
		Namespaces: []*model.Namespace{{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}}},
		Endpoints:  []*model.Endpoint{web},
		Policies:   []*model.Policy{pol},
		Settings:   model.Settings{Enforcement: model.EnforceDefault, VerdictEvents: "all"},
	}
}

// loadEntry compiles cfg, loads it through the verifier and returns the
// ingress entry program of default/web.
func loadEntry(b *testing.B, cfg *model.Config) *ebpf.Program {
	b.Helper()
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ra, err := runtime.ParseArtifacts(arts[0].Node, arts[0].Files)
	if err != nil {
		b.Fatal(err)
	}
	dp, err := runtime.Load(ra)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(dp.Close)
	prog := dp.Collection.Programs["to_default_web"]
	if prog == nil {
		b.Fatal("no program to_default_web")
	}
	return prog
}

func trivial(b *testing.B, typ ebpf.ProgramType, ret int32) *ebpf.Program {
	b.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         typ,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

func packet(b *testing.B, line string) []byte {
	b.Helper()
	c, err := packettest.Parse(line)
	if err != nil {
		b.Fatal(err)
	}
	pkt, err := c.Build()
	if err != nil {
		b.Fatal(err)
	}
	return pkt
}

// measure runs prog over pkt repeat times per iteration, checks the verdict
// and reports the kernel's mean time per run as ns/packet (ns/op is the time
// of one whole BPF_PROG_TEST_RUN call of repeat runs).
func measure(b *testing.B, prog *ebpf.Program, pkt []byte, want uint32) {
	var total time.Duration
	runs := 0
	for b.Loop() {
		ret, d, err := prog.Benchmark(pkt, repeat, nil)
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
}

// BenchmarkPacket measures the policy verdict per packet with
// BPF_PROG_TEST_RUN: the floor (trivial XDP and tc programs), then the
// endpoint's ingress entry program (which tail-calls its IPv4 policy program)
// for an allowed and a denied TCP packet, with 1, 10 and 1,000 CIDR rules in
// the policy to show whether the cost stays flat.
func BenchmarkPacket(b *testing.B) {
	testenv.RequireKernel(b)
	allow := packet(b, "to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn => pass")
	deny := packet(b, "to_default_web tcp 8.8.8.8:40000 > 10.0.1.5:80 syn => drop")

	b.Run("floor-xdp", func(b *testing.B) {
		measure(b, trivial(b, ebpf.XDP, xdpPass), allow, xdpPass)
	})
	b.Run("floor-tc", func(b *testing.B) {
		measure(b, trivial(b, ebpf.SchedCLS, tcOK), allow, tcOK)
	})
	small := loadEntry(b, packetConfig(1))
	b.Run("allow", func(b *testing.B) { measure(b, small, allow, tcOK) })
	b.Run("deny", func(b *testing.B) { measure(b, small, deny, tcShot) })
	for _, n := range []int{10, 1000} {
		prog := loadEntry(b, packetConfig(n))
		b.Run(fmt.Sprintf("rules=%d/allow", n), func(b *testing.B) { measure(b, prog, allow, tcOK) })
		b.Run(fmt.Sprintf("rules=%d/deny", n), func(b *testing.B) { measure(b, prog, deny, tcShot) })
	}
}
