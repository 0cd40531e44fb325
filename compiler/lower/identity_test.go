package lower

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
)

func TestCIDRIdentities(t *testing.T) {
	p := netip.MustParsePrefix
	cfg := &model.Config{
		Cluster: model.Cluster{PodCIDRs: []netip.Prefix{p("10.200.0.0/16")}},
		Policies: []*model.Policy{{
			Ingress: []*model.Rule{
				{CIDRs: []*model.CIDRPeer{{CIDR: p("10.0.0.0/8"), Except: []netip.Prefix{p("10.1.0.0/16")}}}},
				{CIDRs: []*model.CIDRPeer{{CIDR: p("10.1.2.0/24")}, {CIDR: p("0.0.0.0/0")}}},
			},
		}},
	}
	ids := allocateIdentities(cfg)
	// Sorted prefixes: 10.0.0.0/8 (base+0), 10.1.0.0/16 (base+1),
	// 10.1.2.0/24 (base+2), and the pod CIDR 10.200.0.0/16 (base+3), whose
	// addresses are in the cluster and never match a CIDR rule.
	const base = IdentityCIDRBase
	cases := []struct {
		peer *model.CIDRPeer
		want []uint32
	}{
		// /8 minus the /16: the /24 inside the except is excluded too.
		{cfg.Policies[0].Ingress[0].CIDRs[0], []uint32{base}},
		{cfg.Policies[0].Ingress[1].CIDRs[0], []uint32{base + 2}},
		// The whole IPv4 space is world-ipv4 plus every world prefix.
		{cfg.Policies[0].Ingress[1].CIDRs[1], []uint32{IdentityWorldIPv4, base, base + 1, base + 2}},
	}
	for _, c := range cases {
		if got := ids.cidrIdentities(c.peer); !slices.Equal(got, c.want) {
			t.Errorf("%s except %v: got %v, want %v", c.peer.CIDR, c.peer.Except, got, c.want)
		}
	}
	if c := ids.byID[base+3].class; c != classUnmanaged {
		t.Errorf("pod CIDR class = %d, want unmanaged", c)
	}
	node := &model.Node{Name: "n", Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}
	cfg.Nodes = []*model.Node{node}
	ipc := ipcacheContents(ids.ipcachePrefixes(cfg, node))
	if len(ipc) != 2 || ipc[0].Map != ipcacheMap || ipc[1].Map != ipcacheCIDRMap {
		t.Fatalf("ipcache contents %v, want the ipcache and ipcache_cidr maps", ipc)
	}
	addrs, cidrs := ipc[0].Entries, ipc[1].Entries
	// ::/0, 0.0.0.0/0 (as ::ffff:0:0/96) and four prefixes in the trie;
	// the node's address in the hash.
	if len(cidrs) != 6 || len(addrs) != 1 {
		t.Fatalf("ipcache_cidr has %d entries, ipcache %d: %v", len(cidrs), len(addrs), ipc)
	}
	if k, v := cidrs[0].Key, cidrs[0].Value[0]; k[0] != 0 || v != IdentityWorldIPv6 {
		t.Errorf("first entry %v → %d, want ::/0 → world-ipv6", k, v)
	}
	if k, v := cidrs[1].Key, cidrs[1].Value[0]; !slices.Equal(k, []uint64{96, 0, 0, 0xffff, 0}) || v != IdentityWorldIPv4 {
		t.Errorf("second entry %v → %d, want ::ffff:0:0/96 → world-ipv4", k, v)
	}
	want := []uint64{0, 0, 0xffff, 0xc0a8_0001}
	if !slices.Equal(addrs[0].Key, want) || addrs[0].Value[0] != IdentityHost {
		t.Errorf("node address not in the ipcache as host: %v", addrs)
	}
	// A policy's /32 is a whole address: it goes in the hash too.
	if m, e := ipcacheEntry(p("10.1.2.3/32"), 7); m != ipcacheMap || !slices.Equal(e.Key, []uint64{0, 0, 0xffff, 0x0a01_0203}) {
		t.Errorf("10.1.2.3/32 → %s %v, want the ipcache hash", m, e.Key)
	}
	if m, e := ipcacheEntry(p("fd00::/64"), 7); m != ipcacheCIDRMap || !slices.Equal(e.Key, []uint64{64, 0xfd00_0000, 0, 0, 0}) {
		t.Errorf("fd00::/64 → %s %v, want the ipcache_cidr trie", m, e.Key)
	}
}

func TestEndpointIdentitiesStable(t *testing.T) {
	ep := func(ns, name, app string) *model.Endpoint {
		return &model.Endpoint{Namespace: ns, Name: name, Labels: map[string]string{"app": app}}
	}
	a, b, c := ep("x", "a", "web"), ep("x", "b", "web"), ep("y", "c", "web")
	ids := allocateIdentities(&model.Config{Endpoints: []*model.Endpoint{a, b, c}})
	if ids.byEndpoint[a] != ids.byEndpoint[b] {
		t.Errorf("same namespace and labels got different identities")
	}
	if ids.byEndpoint[a] == ids.byEndpoint[c] {
		t.Errorf("different namespaces share an identity")
	}
	// Adding an endpoint with a new label set renumbers nobody.
	d := ep("z", "d", "db")
	ids2 := allocateIdentities(&model.Config{Endpoints: []*model.Endpoint{a, b, c, d}})
	for _, e := range []*model.Endpoint{a, b, c} {
		if ids.byEndpoint[e].id != ids2.byEndpoint[e].id {
			t.Errorf("%s: identity changed from %d to %d", e.ID(), ids.byEndpoint[e].id, ids2.byEndpoint[e].id)
		}
	}
	for _, id := range ids2.all {
		if id.id < IdentityEndpointBase || id.id >= IdentityCIDRBase {
			t.Errorf("endpoint identity %d out of range", id.id)
		}
	}
}

func TestPortBlocks(t *testing.T) {
	cases := []struct {
		lo, hi uint16
		want   []portBlock
	}{
		{80, 81, []portBlock{{80, 0}, {81, 0}}},
		{79, 82, []portBlock{{79, 0}, {80, 0}, {81, 0}, {82, 0}}},
		{16, 47, []portBlock{{16, 4}, {32, 4}}},
		{15, 48, []portBlock{{15, 0}, {16, 4}, {32, 4}, {48, 0}}},
		{1024, 65535, append(blocks(1024, 256, 12), blocks(4096, 4096, 15)...)},
		{1, 65535, slices.Concat(blocks(1, 1, 15), blocks(16, 16, 15), blocks(256, 256, 15), blocks(4096, 4096, 15))},
		// 30000 = 0x7530: 13 blocks of 16 to 0x7600, then 10 of 256 to 0x8000.
		{30000, 32767, append(blocks(30000, 16, 13), blocks(30208, 256, 10)...)},
	}
	for _, c := range cases {
		got := portBlocks(c.lo, c.hi)
		if !slices.Equal(got, c.want) {
			t.Errorf("%d-%d: got %v, want %v", c.lo, c.hi, got, c.want)
		}
		// Every port of the range is covered exactly once, none outside,
		// by aligned blocks of the allowed sizes.
		next := int(c.lo)
		for _, b := range got {
			size := 1 << b.bits
			if int(b.port) != next || int(b.port)%size != 0 || !slices.Contains(portBlockBits, b.bits) {
				t.Errorf("%d-%d: block %v is not aligned, allowed or contiguous", c.lo, c.hi, b)
			}
			next += size
		}
		if next != int(c.hi)+1 {
			t.Errorf("%d-%d: blocks end at %d", c.lo, c.hi, next-1)
		}
	}
}

// blocks returns n blocks of size ports from port.
func blocks(port, size, n int) []portBlock {
	bits := 0
	for 1<<bits < size {
		bits++
	}
	var out []portBlock
	for i := range n {
		out = append(out, portBlock{uint16(port + i*size), bits})
	}
	return out
}

func TestPropagate(t *testing.T) {
	l3 := polKey{plen: prefixL3, id: 5}
	tcp := polKey{plen: prefixProto, id: 5, proto: protoTCP}
	p80 := polKey{plen: prefixPort, id: 5, proto: protoTCP, port: 80}
	p81 := polKey{plen: prefixPort, id: 5, proto: protoTCP, port: 81}
	other := polKey{plen: prefixPort, id: 6, proto: protoTCP, port: 80}
	got := propagate(map[polKey]polVal{
		l3:    {cookie: 4},             // allow everything
		tcp:   {cookie: 9, deny: true}, // deny TCP
		p80:   {cookie: 2},             // allow TCP/80: covered by the deny
		p81:   {cookie: 7, deny: true}, // deny TCP/81: the TCP deny is first
		other: {cookie: 3},             // another identity: untouched
	})
	want := map[polKey]polEntry{
		// The summary of 5 is its L3 key: it has a verdict, and keys of
		// lengths prefixProto and prefixPort.
		l3:  {polVal{cookie: 4}, lengthsVerdict | 1<<(prefixProto-prefixL3) | 1<<(prefixPort-prefixL3)},
		tcp: {polVal: polVal{cookie: 9, deny: true}},
		p80: {polVal: polVal{cookie: 9, deny: true}},
		p81: {polVal: polVal{cookie: 7, deny: true}},
		// 6 has only a key of one port: no summary.
		other: {polVal: polVal{cookie: 3}},
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%+v: got %+v, want %+v", k, got[k], w)
		}
	}
}

// The wildcard identity's keys cover every identity's: an identity's entry
// carries the wildcard's verdicts for the packets it matches, and its
// summary the wildcard's L3 verdict.
func TestPropagateWildcard(t *testing.T) {
	anyL3 := polKey{plen: prefixL3, id: IdentityAny}
	any80 := polKey{plen: prefixPort, id: IdentityAny, proto: protoTCP, port: 80}
	anyRange := polKey{plen: prefixPort - 8, id: IdentityAny, proto: protoTCP, port: 0x1f00} // 7936-8191
	p80 := polKey{plen: prefixPort, id: 5, proto: protoTCP, port: 80}
	p8000 := polKey{plen: prefixPort, id: 5, proto: protoTCP, port: 8000}
	udp := polKey{plen: prefixProto, id: 5, proto: protoUDP}
	got := propagate(map[polKey]polVal{
		anyL3:    {cookie: 6},                          // allow everything from anyone
		any80:    {cookie: 8, deny: true, audit: true}, // audited deny of TCP/80 from anyone
		anyRange: {cookie: 9, deny: true},              // deny TCP 7936-8191 from anyone
		p80:      {cookie: 3},
		p8000:    {cookie: 2},
		udp:      {cookie: 5, deny: true},
	})
	want := map[polKey]polEntry{
		p80:                     {polVal: polVal{cookie: 8, deny: true, audit: true}},
		p8000:                   {polVal: polVal{cookie: 9, deny: true}},
		udp:                     {polVal: polVal{cookie: 5, deny: true}},
		{plen: prefixL3, id: 5}: {polVal{cookie: 6}, lengthsVerdict | 1<<(prefixProto-prefixL3) | 1<<(prefixPort-prefixL3)},
		anyL3:                   {polVal{cookie: 6}, lengthsVerdict | 1<<(prefixPort-8-prefixL3) | 1<<(prefixPort-prefixL3)},
		any80:                   {polVal: polVal{cookie: 8, deny: true, audit: true}},
		anyRange:                {polVal: polVal{cookie: 9, deny: true}},
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%+v: got %+v, want %+v", k, got[k], w)
		}
	}
}

// A summary carries a verdict only when an L3 key decides every packet of
// its identity: the wildcard's summary (which has none here) must not pass
// for the wildcard's L3 key, whatever order the keys are visited in.
func TestPropagateSummaryWithoutVerdict(t *testing.T) {
	keys := map[polKey]polVal{
		{plen: prefixPort - 8, id: IdentityAny, proto: protoICMPv6, port: 128 << 8}: {cookie: 2},
		{plen: prefixPort, id: 5, proto: protoTCP, port: 80}:                        {cookie: 1},
		{plen: prefixPort, id: 6, proto: protoTCP, port: 80}:                        {cookie: 1},
		{plen: prefixPort, id: 7, proto: protoTCP, port: 80}:                        {cookie: 1},
	}
	keys[polKey{plen: prefixProto, id: 6, proto: protoUDP}] = polVal{cookie: 3}
	for range 50 { // Go varies map order from run to run
		got := propagate(keys)
		for _, id := range []uint32{IdentityAny, 6} {
			s, ok := got[polKey{plen: prefixL3, id: id}]
			if !ok || s.lengths&lengthsVerdict != 0 || s.polVal != (polVal{}) {
				t.Fatalf("summary of %d: %+v (present %v), want lengths without the verdict bit", id, s, ok)
			}
		}
		// 5 and 7 have keys of one port only: they need no summary.
		for _, id := range []uint32{5, 7} {
			if s, ok := got[polKey{plen: prefixL3, id: id}]; ok {
				t.Fatalf("identity %d has a summary %+v, want none", id, s)
			}
		}
	}
}

func TestPropagateAudit(t *testing.T) {
	l3 := polKey{plen: prefixL3, id: 5}
	p80 := polKey{plen: prefixPort, id: 5, proto: protoTCP, port: 80}
	got := propagate(map[polKey]polVal{
		l3:  {cookie: 1, deny: true, audit: true}, // an audited policy's deny comes first
		p80: {cookie: 4, deny: true},              // a real deny later
	})
	if w := (polVal{cookie: 4, deny: true}); got[p80].polVal != w {
		t.Errorf("port 80: got %+v, want %+v: an audited deny must not hide a deny", got[p80], w)
	}
	if w := (polVal{cookie: 1, deny: true, audit: true}); got[l3].polVal != w {
		t.Errorf("L3: got %+v, want %+v", got[l3], w)
	}
}

func TestIdentifierUnique(t *testing.T) {
	l := &lowering{}
	a, b := l.identifier("a-b"), l.identifier("a_b")
	if a != "a_b" || b != "a_b_2" {
		t.Errorf("got %q, %q", a, b)
	}
}
