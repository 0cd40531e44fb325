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
	ipc := ids.ipcacheEntries(cfg, node)
	// ::/0, 0.0.0.0/0 (as ::ffff:0:0/96), four prefixes, the node.
	if len(ipc) != 7 {
		t.Fatalf("ipcache has %d entries: %v", len(ipc), ipc)
	}
	if k, v := ipc[0].Key, ipc[0].Value[0]; k[0] != 0 || v != IdentityWorldIPv6 {
		t.Errorf("first entry %v → %d, want ::/0 → world-ipv6", k, v)
	}
	want := []uint64{128, 0, 0, 0xffff, 0xc0a8_0001}
	if i := slices.IndexFunc(ipc, func(e Entry) bool { return slices.Equal(e.Key, want) }); i < 0 || ipc[i].Value[0] != IdentityHost {
		t.Errorf("node address not in the ipcache as host: %v", ipc)
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

func TestPortPrefixes(t *testing.T) {
	cases := []struct {
		lo, hi uint16
		want   []portPrefix
	}{
		{80, 80, []portPrefix{{80, 16}}},
		{80, 81, []portPrefix{{80, 15}}},
		{79, 82, []portPrefix{{79, 16}, {80, 15}, {82, 16}}},
		{0, 65535, []portPrefix{{0, 0}}},
		{1024, 65535, []portPrefix{{1024, 6}, {2048, 5}, {4096, 4}, {8192, 3}, {16384, 2}, {32768, 1}}},
	}
	for _, c := range cases {
		got := portPrefixes(c.lo, c.hi)
		if !slices.Equal(got, c.want) {
			t.Errorf("%d-%d: got %v, want %v", c.lo, c.hi, got, c.want)
		}
		// Every port of the range is covered exactly once, none outside.
		n := 0
		for _, p := range got {
			n += 1 << (16 - p.bits)
		}
		if n != int(c.hi)-int(c.lo)+1 {
			t.Errorf("%d-%d: prefixes cover %d ports", c.lo, c.hi, n)
		}
	}
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
	want := map[polKey]polVal{
		l3:    {cookie: 4},
		tcp:   {cookie: 9, deny: true},
		p80:   {cookie: 9, deny: true},
		p81:   {cookie: 7, deny: true},
		other: {cookie: 3},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%+v: got %+v, want %+v", k, got[k], w)
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
	if w := (polVal{cookie: 4, deny: true}); got[p80] != w {
		t.Errorf("port 80: got %+v, want %+v: an audited deny must not hide a deny", got[p80], w)
	}
	if w := (polVal{cookie: 1, deny: true, audit: true}); got[l3] != w {
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
