package randpolicy

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/reference"
)

// TestGenerateDeterministic: the same seed gives the same CUE bytes and the
// same probe lines; different seeds give different configurations.
func TestGenerateDeterministic(t *testing.T) {
	render := func(seed uint64) []byte {
		c := Generate(seed)
		var b bytes.Buffer
		files := c.Files()
		b.Write(files[ClusterFile])
		b.Write(files[PoliciesFile])
		for _, p := range Probes(c, seed, 50) {
			fmt.Fprintln(&b, p)
		}
		return b.Bytes()
	}
	distinct := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		a, b := render(seed), render(seed)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two generations differ", seed)
		}
		distinct[string(a)] = true
	}
	if len(distinct) != 20 {
		t.Errorf("20 seeds gave %d distinct configurations", len(distinct))
	}
}

// TestGeneratedConfigsCompile: every generated configuration passes the
// front end and compiles, and its probes read back from their lines.
func TestGeneratedConfigsCompile(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		c := Generate(seed)
		cfg, err := Load(c.Files())
		if err != nil {
			t.Fatalf("seed %d: %v\n%s%s", seed, err, c.Files()[ClusterFile], c.Files()[PoliciesFile])
		}
		if _, err := compiler.Compile(cfg, compiler.Options{}); err != nil {
			t.Fatalf("seed %d: compile: %v\n%s", seed, err, c.Files()[PoliciesFile])
		}
		for _, p := range Probes(c, seed, 150) {
			back, err := ParseProbe(p.String())
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if back.String() != p.String() || !reflect.DeepEqual(back.Packets, p.Packets) {
				t.Fatalf("seed %d: %q reads back as %q", seed, p, back)
			}
			for i, pk := range p.Packets {
				f, err := p.Frame(i)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				min := MinFrame
				if pk.IPv6() {
					min = MinFrame6
				}
				if len(f) < min && pk.Kind != "arp" {
					t.Fatalf("seed %d: %q is %d bytes, shorter than %d", seed, pk, len(f), min)
				}
			}
		}
	}
}

// TestPacketFrames holds packet lines to what the reference's parser reads
// from the frames they build, and to whether it finds them malformed.
func TestPacketFrames(t *testing.T) {
	const v6 = "[fd00::1:1]:40000 > [2001:db8::7]"
	for _, tc := range []struct {
		line      string
		malformed bool
		changed   bool // Malformed() without being malformed
		proto     uint8
		dport     uint16
		icmp      [2]uint8
	}{
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 syn", proto: 6, dport: 80},
		{line: "udp 10.0.1.1:40000 > 10.0.2.2:53 opts=3", proto: 17, dport: 53},
		{line: "sctp 10.0.1.1:40000 > 10.0.2.2:9 pad=7", proto: 132, dport: 9},
		{line: "icmp 10.0.1.1 > 10.0.2.2 type=3 code=1", proto: 1, icmp: [2]uint8{3, 1}},
		{line: "ip 10.0.1.1 > 10.0.2.2 proto=47", proto: 47},
		{line: "udp 10.0.1.1:40000 > 10.0.2.2:53 mf id=9", proto: 17, dport: 53},
		{line: "udp 10.0.1.1:40000 > 10.0.2.2:53 frag=4 id=9", proto: 17},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 trunc=60", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 ihl=4", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 ihl=15", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 ver=6", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 totlen=19", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 totlen=1500", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 tcpoff=4", malformed: true},
		{line: "tcp 10.0.1.1:40000 > 10.0.2.2:80 tcpoff=15", malformed: true},
		{line: "tcp " + v6 + ":80 syn", proto: 6, dport: 80},
		{line: "tcp " + v6 + ":80 syn ext=hbh.rt.dst", changed: true, proto: 6, dport: 80},
		{line: "udp " + v6 + ":53 ext=hbh.hbh.hbh.hbh.hbh.hbh.hbh.hbh", changed: true, proto: 17, dport: 53},
		{line: "udp " + v6 + ":53 ext=hbh.hbh.hbh.hbh.hbh.hbh.hbh.hbh.hbh", malformed: true},
		{line: "udp " + v6 + ":53 ext=long", changed: true, proto: 17, dport: 53},
		{line: "udp " + v6 + ":53 ext=long.dst", malformed: true},
		{line: "udp " + v6 + ":53 ext=big", malformed: true},
		{line: "udp " + v6 + ":53 mf id=9", proto: 17, dport: 53},
		{line: "udp " + v6 + ":53 frag=4 id=9", proto: 17},
		{line: "udp " + v6 + ":53 mf id=9 ext=frag.dst", changed: true, proto: 17, dport: 53},
		{line: "udp " + v6 + ":53 ext=frag", changed: true, proto: 17, dport: 53},
		{line: "tcp " + v6 + ":80 plen=7", malformed: true},
		{line: "tcp " + v6 + ":80 ver=4", malformed: true},
		{line: "tcp " + v6 + ":80 tcpoff=4", malformed: true},
		{line: "tcp " + v6 + ":80 trunc=80", malformed: true},
		{line: "icmp fd00::1:1 > fd00::2:2 type=135", proto: 58, icmp: [2]uint8{135, 0}},
		{line: "icmp fd00::1:1 > fd00::2:2 type=128", proto: 58, icmp: [2]uint8{128, 0}},
		{line: "icmp fd00::1:1 > fd00::2:2 type=1 code=4", proto: 58, icmp: [2]uint8{1, 4}},
		{line: "ip fd00::1:1 > 2001:db8::7 proto=59", proto: 59},
	} {
		p, err := ParsePacket(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != tc.line {
			t.Errorf("%q reads back as %q", tc.line, p)
		}
		if p.Malformed() != (tc.malformed || tc.changed) {
			t.Errorf("%q: Malformed() = %v", tc.line, p.Malformed())
		}
		frame, err := p.Frame()
		if err != nil {
			t.Fatal(err)
		}
		f, isIP, err := reference.ParseFrame(frame)
		if !isIP {
			t.Errorf("%q: not IP", tc.line)
		}
		if (err != nil) != tc.malformed {
			t.Errorf("%q: reference parse error %v, want malformed %v", tc.line, err, tc.malformed)
			continue
		}
		if tc.malformed {
			continue
		}
		if f.Src != p.Src || f.Dst != p.Dst || f.Protocol != tc.proto || f.DstPort != tc.dport || f.ICMPType != tc.icmp[0] || f.ICMPCode != tc.icmp[1] {
			t.Errorf("%q: reference reads %+v", tc.line, f)
		}
	}
	for _, bad := range []string{
		"tcp 10.0.1.1 > 10.0.2.2:80", "gre 10.0.1.1 > 10.0.2.2", "tcp 10.0.1.1:1 > 10.0.2.2:80 ttl=3",
		"tcp [fd00::1]:1 > 10.0.2.2:80", "ip 10.0.1.1 > 10.0.2.2 proto=300", "arp fd00::1 > fd00::2",
		"tcp [fd00::1]:1 > [fd00::2]:80 ext=jumbo", "tcp 10.0.1.1:1 > 10.0.2.2:80 ext=hbh", "tcp [fd00::1]:1 > [fd00::2]:80 opts=1",
		"tcp 10.0.1.1:1 > 10.0.2.2:80 plen=3", "tcp 10.0.1.1:1 > 10.0.2.2:80 quote=1",
		"icmp 10.0.2.2 > 10.0.1.1 type=3 quote=1", "tcp 10.0.1.1:1 > 10.0.2.2:80 ; icmp 10.0.2.2 > 10.0.1.1 type=3 quote=2", "tcp 10.0.1.1:1 > 10.0.2.2:80 opts=11",
		"tcp 10.0.1.1:1 > 10.0.2.2:80 ; udp 10.0.1.3:1 > 10.0.2.2:80",
	} {
		if _, err := ParseProbe(bad); err == nil {
			t.Errorf("%q: parsed without an error", bad)
		}
	}
}

// TestQuotedErrors: an ICMP error quotes the IP header and the first 8
// bytes of the transport header of the packet it names, behind the 8-byte
// ICMP header (ICMPv6: 4 bytes of header, 4 unused).
func TestQuotedErrors(t *testing.T) {
	for _, tc := range []struct {
		line    string
		quoteAt int // where the quotation starts in the error's frame
		quoted  int // bytes quoted
	}{
		{"tcp 10.0.1.1:40000 > 10.0.2.2:80 syn ; icmp 10.0.2.2 > 10.0.1.1 type=3 code=3 quote=1", 14 + 20 + 8, 20 + 8},
		{"udp 10.0.1.1:40000 > 10.0.2.2:53 opts=2 ; icmp 10.0.2.2 > 10.0.1.1 type=11 quote=1", 14 + 20 + 8, 28 + 8},
		{"tcp [fd00::1]:40000 > [fd00::2]:80 syn ; icmp fd00::2 > fd00::1 type=1 code=4 quote=1", 14 + 40 + 8, 40 + 8},
		{"icmp fd00::1 > fd00::2 type=128 ; icmp fd00::2 > fd00::1 type=2 quote=1", 14 + 40 + 8, 40 + 8},
	} {
		p, err := ParseProbe(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != tc.line {
			t.Errorf("%q reads back as %q", tc.line, p)
		}
		first, err := p.Frame(0)
		if err != nil {
			t.Fatal(err)
		}
		errFrame, err := p.Frame(1)
		if err != nil {
			t.Fatal(err)
		}
		if len(errFrame) != tc.quoteAt+tc.quoted {
			t.Errorf("%q: error frame of %d bytes, want %d", tc.line, len(errFrame), tc.quoteAt+tc.quoted)
			continue
		}
		if !bytes.Equal(errFrame[tc.quoteAt:], first[14:14+tc.quoted]) {
			t.Errorf("%q: quotation\n%x\nwant\n%x", tc.line, errFrame[tc.quoteAt:], first[14:14+tc.quoted])
		}
		f, _, err := reference.ParseFrame(errFrame)
		if err != nil || f.ICMPType != p.Packets[1].Type {
			t.Errorf("%q: the reference reads the error as %+v, %v", tc.line, f, err)
		}
		if _, err := p.Packets[1].Frame(); err == nil {
			t.Errorf("%q: Packet.Frame builds an error without its probe", tc.line)
		}
	}
}

// TestMinimiseSynthetic shrinks a list of numbers while it holds 3 and 7
// in that order.
func TestMinimiseSynthetic(t *testing.T) {
	shrink := func(xs []int) [][]int {
		var out [][]int
		if len(xs) > 1 {
			out = append(out, xs[:len(xs)/2], xs[len(xs)/2:])
		}
		for i := range xs {
			out = append(out, slices.Delete(slices.Clone(xs), i, i+1))
		}
		return out
	}
	keep := func(xs []int) bool {
		i := slices.Index(xs, 3)
		return i >= 0 && slices.Contains(xs[i:], 7)
	}
	in := []int{9, 3, 1, 4, 1, 5, 9, 2, 6, 7, 3, 5, 8, 9, 7}
	got, calls := Minimise(in, shrink, keep, 1000)
	if !slices.Equal(got, []int{3, 7}) {
		t.Errorf("got %v after %d calls, want [3 7]", got, calls)
	}
	// The budget stops it early, with a value that still holds.
	got, calls = Minimise(in, shrink, keep, 3)
	if calls != 3 || !keep(got) || len(got) >= len(in) {
		t.Errorf("budget 3: got %v after %d calls", got, calls)
	}
	// Nothing to shrink: no call.
	if got, calls := Minimise([]int{3, 7}, func([]int) [][]int { return nil }, keep, 10); calls != 0 || len(got) != 2 {
		t.Errorf("no candidates: %v after %d calls", got, calls)
	}
}

// referenceRunner is a stand-in for the kernel: a second evaluator of the
// same configuration, optionally broken by change.
func referenceRunner(t *testing.T, c *Config, change func(reference.Verdict) Outcome) (*reference.Evaluator, Runner) {
	t.Helper()
	cfg, err := Load(c.Files())
	if err != nil {
		t.Fatal(err)
	}
	other := reference.New(cfg)
	return reference.New(cfg), func(s Side, frame []byte) (Outcome, error) {
		v := s.Judge(other, frame)
		if change != nil {
			return change(v), nil
		}
		return ReferenceOutcome(v), nil
	}
}

// ignoreDeny is a datapath that forgets deny rules.
func ignoreDeny(v reference.Verdict) Outcome {
	if v.Decider.Kind == reference.KindDeny && !v.Allowed {
		return Outcome{Pass: true, Decider: DecidedOpen}
	}
	return ReferenceOutcome(v)
}

// TestCompareAndMinimiseWithoutKernel runs the comparison and the
// minimiser against evaluators instead of the kernel: the reference agrees
// with itself on every probe, and a datapath that ignores deny rules
// disagrees, with a case that minimises to one policy with one deny rule.
func TestCompareAndMinimiseWithoutKernel(t *testing.T) {
	var broken *Case
	var sig string
	for seed := uint64(1); seed <= 10; seed++ {
		c := Generate(seed)
		e, run := referenceRunner(t, c, nil)
		for _, p := range Probes(c, seed, 100) {
			if p.twoWay() {
				// The stand-in judges packet by packet; replies
				// pass by the connection model (TestConnectionModel).
				continue
			}
			st, err := Compare(e, p, run)
			if err != nil {
				t.Fatal(err)
			}
			if i := FirstDisagreement(st); i >= 0 {
				t.Fatalf("seed %d: the reference disagrees with itself on %s: %s", seed, p, st[i])
			}
		}
		if broken != nil {
			continue
		}
		e, run = referenceRunner(t, c, ignoreDeny)
		for _, p := range Probes(c, seed, 100) {
			st, err := Compare(e, p, run)
			if err != nil {
				t.Fatal(err)
			}
			if i := FirstDisagreement(st); i >= 0 {
				broken, sig = &Case{c, p}, Signature(p, st[i])
				break
			}
		}
	}
	if broken == nil {
		t.Fatal("no probe of seeds 1..10 meets a deny rule")
	}
	keep := func(c Case) bool {
		e, run := referenceRunner(t, c.Config, ignoreDeny)
		st, err := Compare(e, c.Probe, run)
		if err != nil {
			return false
		}
		i := FirstDisagreement(st)
		return i >= 0 && Signature(c.Probe, st[i]) == sig
	}
	small, calls := Minimise(*broken, Case.Shrinks, keep, 1000)
	if !keep(small) {
		t.Fatalf("the minimised case no longer disagrees")
	}
	var denies int
	for _, p := range small.Config.Policies {
		denies += len(p.IngressDeny) + len(p.EgressDeny)
	}
	if len(small.Config.Policies) != 1 || denies != 1 || small.Probe.Src() != broken.Probe.Src() || small.Probe.Dst() != broken.Probe.Dst() {
		t.Errorf("after %d calls: %d policies, %d deny rules, probe %s (was %s):\n%s", calls, len(small.Config.Policies), denies, small.Probe, broken.Probe, small.Config.Files()[PoliciesFile])
	}
	if len(small.Config.Endpoints) > 2 {
		t.Errorf("%d endpoints left; only the probe's may remain", len(small.Config.Endpoints))
	}
}

// TestConnectionModel holds Compare's model of connections to
// docs/policy.md: a reply, and an ICMP error quoting a packet, pass
// unjudged where the connection's first packet passed the same subject the
// other way, at a subject that tracks connections (enforced in a
// direction); elsewhere, and at the host firewall likewise, policy judges
// them.
func TestConnectionModel(t *testing.T) {
	files := map[string][]byte{
		ClusterFile: []byte(`package ebpfc

cluster: {name: "diff", podCIDRs: ["10.0.0.0/16", "fd00::/64"]}
nodes: "node-1": {addresses: ["192.168.1.1", "fc00::1"], devices: ["eth0"], labels: {"role": "worker"}}
nodes: "node-2": {addresses: ["192.168.1.2"], devices: ["eth0"]}
endpoints: x: a: {node: "node-1", interface: "lxc-x-a", addresses: ["10.0.1.1", "fd00::1:1"], labels: {"app": "a"}}
endpoints: x: b: {node: "node-2", interface: "lxc-x-b", addresses: ["10.0.2.2"], labels: {"app": "b"}}
endpoints: x: c: {node: "node-2", interface: "lxc-x-c", addresses: ["10.0.3.3"], labels: {"app": "c"}}
`),
		PoliciesFile: []byte(`package ebpfc

policies: x: "p0": {
	endpointSelector: {matchLabels: {"app": "a"}}
	ingress: [{fromEndpoints: [{matchLabels: {"app": "b"}}]}]
}
clusterPolicies: "h": {
	nodeSelector: {matchLabels: {"role": "worker"}}
	ingress: [{fromCIDR: ["198.51.100.0/24"]}]
}
`),
	}
	cfg, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	e := reference.New(cfg)
	pass := func(Side, []byte) (Outcome, error) { return Outcome{Pass: true, Decider: DecidedOpen}, nil }
	for _, tc := range []struct {
		probe string
		want  []string // the reference outcome of each step
	}{
		// a's egress is open but tracks, as its ingress is enforced:
		// the reply and a related error come in; alone, they do not.
		{"udp 10.0.1.1:40000 > 8.8.8.8:53 ; udp 8.8.8.8:53 > 10.0.1.1:40000", []string{
			"packet 1 from_x_a: pass open", "packet 1 host_egress@node-1: pass open",
			"packet 2 host_ingress@node-1: pass open (not-host)", "packet 2 to_x_a: pass open (reply)"}},
		{"udp 8.8.8.8:53 > 10.0.1.1:40000", []string{
			"packet 1 host_ingress@node-1: pass open (not-host)", "packet 1 to_x_a: drop default-deny"}},
		{"udp 10.0.1.1:40000 > 8.8.8.8:53 ; icmp 8.8.8.8 > 10.0.1.1 type=3 code=3 quote=1", []string{
			"packet 1 from_x_a: pass open", "packet 1 host_egress@node-1: pass open",
			"packet 2 host_ingress@node-1: pass open (not-host)", "packet 2 to_x_a: pass open (related)"}},
		{"tcp [fd00::1:1]:40000 > [2001:db8::7]:80 syn ; icmp 2001:db8::7 > fd00::1:1 type=2 quote=1", []string{
			"packet 1 from_x_a: pass open", "packet 1 host_egress@node-1: pass open",
			"packet 2 host_ingress@node-1: pass open (not-host)", "packet 2 to_x_a: pass open (related)"}},
		// The reply's own connection is another: a later packet the
		// first way is judged again.
		{"udp 10.0.2.2:40000 > 10.0.1.1:53 ; udp 10.0.1.1:53 > 10.0.2.2:40000", []string{
			"packet 1 from_x_b: pass open", "packet 1 host_egress@node-2: pass open",
			"packet 1 host_ingress@node-1: pass open (not-host)", "packet 1 to_x_a: pass allow x/p0 ingress[0]",
			"packet 2 from_x_a: pass open", "packet 2 host_egress@node-1: pass open",
			"packet 2 host_ingress@node-2: pass open", "packet 2 to_x_b: pass open"}},
		// The host: its egress is open and tracks, its ingress enforced.
		{"tcp 192.168.1.1:40000 > 8.8.8.8:443 syn ; tcp 8.8.8.8:443 > 192.168.1.1:40000", []string{
			"packet 1 host_egress@node-1: pass open",
			"packet 2 host_ingress@node-1: pass open (reply)"}},
		{"tcp 8.8.8.8:443 > 192.168.1.1:40000", []string{"packet 1 host_ingress@node-1: drop default-deny"}},
		// An ICMP error about a packet that was dropped is judged.
		{"udp 8.8.8.8:53 > 10.0.1.1:40000 ; icmp 10.0.1.1 > 8.8.8.8 type=3 quote=1", []string{
			"packet 1 host_ingress@node-1: pass open (not-host)", "packet 1 to_x_a: drop default-deny",
			"packet 2 from_x_a: pass open", "packet 2 host_egress@node-1: pass open"}},
		{"icmp 8.8.8.8 > 10.0.1.1 type=3 code=3", []string{
			"packet 1 host_ingress@node-1: pass open (not-host)", "packet 1 to_x_a: drop default-deny"}},
	} {
		p, err := ParseProbe(tc.probe)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Compare(e, p, pass)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range st {
			got = append(got, fmt.Sprintf("packet %d %s%s: %s", s.Packet+1, s.Side.Program(), s.where(), s.Reference))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.probe, got, tc.want)
		}
	}
}
