package lower

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
)

func TestPeerIdentities(t *testing.T) {
	p := netip.MustParsePrefix
	cfg := &model.Config{Policies: []*model.Policy{{
		Ingress: []*model.Rule{
			{CIDRs: []*model.CIDRPeer{{CIDR: p("10.0.0.0/8"), Except: []netip.Prefix{p("10.1.0.0/16")}}}},
			{CIDRs: []*model.CIDRPeer{{CIDR: p("10.1.2.0/24")}, {CIDR: p("0.0.0.0/0")}}},
		},
	}}}
	l := &lowering{cfg: cfg}
	l.allocateIdentities()
	// Sorted prefixes: 10.0.0.0/8 (base+0), 10.1.0.0/16 (base+1),
	// 10.1.2.0/24 (base+2).
	const base = IdentityCIDRBase
	cases := []struct {
		peer *model.CIDRPeer
		want []uint32
	}{
		// /8 minus the /16: the /24 inside the except is excluded too.
		{cfg.Policies[0].Ingress[0].CIDRs[0], []uint32{base}},
		{cfg.Policies[0].Ingress[1].CIDRs[0], []uint32{base + 2}},
		// The whole space is world plus every named prefix.
		{cfg.Policies[0].Ingress[1].CIDRs[1], []uint32{IdentityWorld, base, base + 1, base + 2}},
	}
	for _, c := range cases {
		if got := l.peerIdentities(c.peer); !slices.Equal(got, c.want) {
			t.Errorf("%s except %v: got %v, want %v", c.peer.CIDR, c.peer.Except, got, c.want)
		}
	}
	ipc := l.ipcacheEntries()
	if len(ipc) != 4 || ipc[0].Value[0] != IdentityWorld || ipc[3].Key[0] != 24 {
		t.Errorf("ipcache entries: %v", ipc)
	}
}

func TestIdentifierUnique(t *testing.T) {
	l := &lowering{}
	a, b := l.identifier("a-b"), l.identifier("a_b")
	if a != "a_b" || b != "a_b_2" {
		t.Errorf("got %q, %q", a, b)
	}
}
