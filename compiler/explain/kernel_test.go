//go:build linux

package explain

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// TestExplainAgreesWithKernel runs every stage an explanation shows
// through the same program loaded into the kernel (BPF_PROG_TEST_RUN), with
// the same frame: the kernel must return the same value, and count the
// packet against the rule the explanation says decided.
func TestExplainAgreesWithKernel(t *testing.T) {
	testenv.RequireKernel(t)
	cfg := testConfig(t)
	kernel := map[string]*ebpf.Collection{}
	for _, n := range cfg.Nodes {
		arts, err := compiler.Compile(cfg, compiler.Options{Node: n.Name})
		if err != nil {
			t.Fatal(err)
		}
		ra, err := runtime.ParseArtifacts(n.Name, arts[0].Files)
		if err != nil {
			t.Fatal(err)
		}
		dp, err := runtime.Load(ra)
		if err != nil {
			t.Fatalf("node %s: the kernel refused the object: %v", n.Name, err)
		}
		t.Cleanup(dp.Close)
		kernel[n.Name] = dp.Collection
	}
	flows := []string{
		"tcp from default/client to default/web:80",
		"tcp from default/client to default/web:80 ack",
		"tcp from default/client to default/web:81",
		"tcp 8.8.8.8:5000 -> 10.0.1.5:443",
		"tcp 8.8.8.8:5000 -> 10.0.1.5:443 fin ack",
		"tcp 203.0.113.9:5000 -> 10.0.1.5:443",
		"tcp 203.0.113.9:5000 -> 10.0.1.5:80 rst",
		"tcp 8.8.8.8:5000 -> 10.0.1.5:22",
		"udp 8.8.8.8:5000 -> 10.0.1.5:443",
		"sctp 8.8.8.8:5000 -> 10.0.1.5:443",
		"icmp 8.8.8.8 -> default/web type 8",
		"icmp 8.8.8.8 -> default/web type 0",
		"icmp 203.0.113.1 -> default/web type 8",
		"tcp from default/web to default/db:5432",
		"tcp from default/web to default/db:5433",
		"tcp from default/client to default/db:5432",
		"tcp 192.168.1.1:1 -> default/db:5432",
		"udp from default/db to 8.8.8.8:53",
		"icmpv6 fd00::9 -> default/web",
		"tcp 8.8.8.8:5000 -> default/canary:22",
		"tcp 8.8.8.8:5000 -> default/canary:443",
		"tcp from default/canary to default/db:5432",
	}
	stages := 0
	for _, text := range flows {
		r := explainFlow(t, text, Options{})
		f, err := ParseFlow(r.Flow)
		if err != nil {
			t.Fatalf("%s: the report's flow %q does not parse: %v", text, r.Flow, err)
		}
		frame, err := f.Frame()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range r.Stages {
			coll := kernel[st.Node]
			prog := coll.Programs[st.Attach.Program]
			if prog == nil {
				t.Fatalf("%s: node %s has no program %s in the kernel", text, st.Node, st.Attach.Program)
			}
			var before uint64
			if st.Rule != nil {
				before = kernelPackets(t, coll.Maps["rule_stats"], st.Rule.Cookie)
			}
			ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
			if err != nil {
				t.Fatalf("%s: %s: %v", text, st.Attach.Program, err)
			}
			got := int64(int32(ret))
			if prog.Type() == ebpf.XDP {
				got = int64(ret)
			}
			if got != st.Return {
				t.Errorf("%s: node %s %s: the kernel returns %d, the explanation %d (%s)", text, st.Node, st.Attach.Program, got, st.Return, st.Verdict)
			}
			if st.Rule != nil {
				if n := kernelPackets(t, coll.Maps["rule_stats"], st.Rule.Cookie) - before; n != 1 {
					t.Errorf("%s: node %s: the kernel counted %d packets against cookie %d (%s), want 1", text, st.Node, n, st.Rule.Cookie, st.Rule.summary())
				}
			}
			stages++
		}
	}
	t.Logf("%d flows, %d stages: the kernel agrees with every explanation", len(flows), stages)
}

// kernelPackets sums the packet counter of a per-CPU stats entry.
func kernelPackets(t *testing.T, m *ebpf.Map, key uint32) uint64 {
	t.Helper()
	var vals [][]byte
	if err := m.Lookup(key, &vals); err != nil {
		t.Fatalf("rule_stats[%d]: %v", key, err)
	}
	var sum uint64
	for _, v := range vals {
		sum += binary.LittleEndian.Uint64(v)
	}
	return sum
}
